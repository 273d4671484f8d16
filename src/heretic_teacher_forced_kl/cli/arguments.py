# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The launcher's own command-line options, separated from heretic's.

Everything the launcher does not recognize goes to heretic unchanged, so every
heretic flag, `config.toml`, `HERETIC_*` variables and the trailing MODEL
argument keep working. Scorer settings come from flags or from the
`[scorer.TeacherForcedKL]` table of `config.toml`; flags win.
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..settings import SETTINGS_TABLE, TeacherForcedKLSettings, default_prompts
from .registry import TEACHER_FORCED_KL_NAME, ScorerChoice, resolve_scorer

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

#: The flag of every scorer setting, in the order of the settings model.
#: `batch_size` is `--kl-batch-size`, since heretic has a `--batch-size` of its own.
SETTING_FLAGS: dict[str, str] = {
    "prompts": "--kl-prompts",
    "kl_tokens": "--kl-tokens",
    "position_weight_decay": "--position-weight-decay",
    "batch_size": "--kl-batch-size",
    "reference_storage": "--reference-storage",
}

#: heretic's own settings file, read from the working directory.
CONFIG_FILE = "config.toml"


class LauncherError(Exception):
    """A one-line error in the launcher's input, reported before any model is loaded."""


@dataclass
class LaunchOptions:
    """The launcher's parsed options and the arguments that go to heretic."""

    scorer: ScorerChoice
    setting_flags: dict[str, Any]
    non_interactive: bool
    heretic_arguments: list[str] = field(default_factory=list)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the launcher's own options (heretic's are parsed by heretic)."""
    parser = argparse.ArgumentParser(
        prog="heretic-kl",
        add_help=False,
        allow_abbrev=False,
        description=(
            "Runs heretic exactly as the `heretic` command would, with model damage "
            "measured by the chosen scorer (teacher-forced multi-token KL divergence "
            "by default). Every other option is heretic's; see below. "
            "`heretic-kl compare ORIGINAL CANDIDATE` writes a damage report "
            "(`heretic-kl compare --help`)."
        ),
    )
    options = parser.add_argument_group("heretic-kl options")
    options.add_argument(
        "--scorer",
        default=TEACHER_FORCED_KL_NAME,
        help=(
            "Scorer that measures damage, by its registered name (entry-point group "
            "heretic.scorers): teacher-forced-kl (default) or kl-divergence (heretic's "
            "built-in first-token KL)."
        ),
    )
    descriptions = {
        name: info.description or ""
        for name, info in TeacherForcedKLSettings.model_fields.items()
    }
    options.add_argument(
        SETTING_FLAGS["prompts"],
        metavar="DATASET",
        help=(
            descriptions["prompts"]
            + " A .txt file, a dataset ID or folder (split test[:100], column text), "
            "or a JSON object with the fields of heretic's DatasetSpecification."
        ),
    )
    options.add_argument(
        SETTING_FLAGS["kl_tokens"], metavar="N", help=descriptions["kl_tokens"]
    )
    options.add_argument(
        SETTING_FLAGS["position_weight_decay"],
        metavar="DECAY",
        help=descriptions["position_weight_decay"],
    )
    options.add_argument(
        SETTING_FLAGS["batch_size"], metavar="N", help=descriptions["batch_size"]
    )
    options.add_argument(
        SETTING_FLAGS["reference_storage"],
        metavar="{auto,device,cpu}",
        help=descriptions["reference_storage"],
    )
    options.add_argument(
        "--non-interactive",
        action="store_true",
        help=(
            "After the study, print the Pareto front of trials and exit instead of "
            "showing heretic's menus (for scripts and machines without a terminal)."
        ),
    )
    return parser


def parse_prompts_flag(
    value: str,
    flag: str = SETTING_FLAGS["prompts"],
    error_class: type[Exception] = LauncherError,
) -> dict[str, Any]:
    """
    Turns the value of a prompts option (`--kl-prompts`, `compare --prompts`) into
    a dataset specification table: a JSON object as it is, an existing file by its
    path, anything else as a dataset ID or folder with the default split and column.
    """
    if value.lstrip().startswith("{"):
        try:
            specification = json.loads(value)
        except json.JSONDecodeError as error:
            raise error_class(f"{flag}: invalid JSON ({error.msg}).") from None
        if not isinstance(specification, dict):
            raise error_class(f"{flag}: the JSON value must be an object.")
        return specification
    if Path(value).is_file():
        return {"dataset": value}
    defaults = default_prompts()
    return {"dataset": value, "split": defaults.split, "column": defaults.column}


def parse_setting_flags(namespace: argparse.Namespace) -> dict[str, Any]:
    """Converts the scorer-setting flags that were given, with one-line errors."""
    flags: dict[str, Any] = {}
    for name, flag in SETTING_FLAGS.items():
        value = getattr(namespace, name_of(flag))
        if value is None:
            continue
        if name == "prompts":
            flags[name] = parse_prompts_flag(value)
            continue
        annotation = TeacherForcedKLSettings.model_fields[name].annotation
        if annotation is int:
            try:
                flags[name] = int(value)
            except ValueError:
                raise LauncherError(
                    f"{flag}: expected an integer, got {value!r}."
                ) from None
        elif annotation is float:
            try:
                flags[name] = float(value)
            except ValueError:
                raise LauncherError(
                    f"{flag}: expected a number, got {value!r}."
                ) from None
        else:
            flags[name] = value
    try:
        TeacherForcedKLSettings.model_validate(flags)
    except ValidationError as error:
        details = error.errors()[0]
        setting = str(details["loc"][0])
        flag = SETTING_FLAGS.get(setting, setting)
        raise LauncherError(
            f"{flag}: {details['msg'].rstrip('.')} (got {flags.get(setting)!r})."
        ) from None
    return flags


def name_of(flag: str) -> str:
    """The argparse destination of a flag."""
    return flag.lstrip("-").replace("-", "_")


def parse_arguments(arguments: list[str]) -> LaunchOptions:
    """Splits the command line into the launcher's options and heretic's arguments."""
    namespace, heretic_arguments = build_parser().parse_known_args(arguments)
    try:
        scorer = resolve_scorer(namespace.scorer)
    except ValueError as error:
        raise LauncherError(str(error)) from None
    setting_flags = parse_setting_flags(namespace)
    if setting_flags and scorer.name != TEACHER_FORCED_KL_NAME:
        given = ", ".join(SETTING_FLAGS[name] for name in setting_flags)
        raise LauncherError(
            f"{given}: these options configure teacher-forced-kl, not --scorer {scorer.name}."
        )
    return LaunchOptions(
        scorer=scorer,
        setting_flags=setting_flags,
        non_interactive=namespace.non_interactive,
        heretic_arguments=heretic_arguments,
    )


def read_config_file(path: Path = Path(CONFIG_FILE)) -> dict[str, Any]:
    """Reads heretic's `config.toml` from the working directory, if there is one."""
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise LauncherError(f"{path}: invalid TOML ({error}).") from None


def config_scorer_table(config: dict[str, Any]) -> dict[str, Any]:
    """The `[scorer.TeacherForcedKL]` table of a parsed `config.toml`."""
    table = config.get("scorer", {}).get("TeacherForcedKL", {})
    if not isinstance(table, dict):
        raise LauncherError(f"{CONFIG_FILE}: [{SETTINGS_TABLE}] must be a table.")
    return table


def effective_settings(
    config: dict[str, Any], setting_flags: dict[str, Any]
) -> tuple[TeacherForcedKLSettings, bool]:
    """
    Merges the `config.toml` table with the flags (flags win) and validates the result.

    Returns the settings and whether the prompts were set explicitly.
    """
    merged = {**config_scorer_table(config), **setting_flags}
    try:
        settings = TeacherForcedKLSettings.model_validate(merged)
    except ValidationError as error:
        details = error.errors()[0]
        location = ".".join(str(part) for part in details["loc"])
        raise LauncherError(
            f"{CONFIG_FILE} [{SETTINGS_TABLE}] {location}: {details['msg'].rstrip('.')} "
            f"(see config.default.toml of heretic-teacher-forced-kl)."
        ) from None
    return settings, "prompts" in merged


def model_argument(heretic_arguments: list[str], config: dict[str, Any]) -> str | None:
    """
    Finds the model heretic will load: `--model`, the trailing MODEL argument
    (heretic's own rule), `HERETIC_MODEL` or `model` in `config.toml`.
    """
    for index, argument in enumerate(heretic_arguments):
        if argument == "--model" and index + 1 < len(heretic_arguments):
            return heretic_arguments[index + 1]
        if argument.startswith("--model="):
            return argument.split("=", 1)[1]
    if heretic_arguments and not heretic_arguments[-1].startswith("-"):
        return heretic_arguments[-1]
    if os.environ.get("HERETIC_MODEL"):
        return os.environ["HERETIC_MODEL"]
    model = config.get("model")
    return model if isinstance(model, str) else None


def looks_like_local_path(model: str) -> bool:
    """
    Whether `model` names a folder on disk rather than a Hugging Face model ID
    (which has the form `owner/name`).
    """
    if model.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.isabs(model):
        return True
    return model.count("/") > 1 or "\\" in model


def check_model(model: str | None) -> None:
    """Stops with a one-line error when the model is a local path that does not exist."""
    if model is None or not model:
        return
    path = Path(model).expanduser()
    if looks_like_local_path(model) and not path.exists():
        raise LauncherError(
            f"MODEL: no model folder at {model!r}; give the path of a saved model "
            "or a Hugging Face model ID (owner/name)."
        )
