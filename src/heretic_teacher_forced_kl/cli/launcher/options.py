# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The launcher's own command-line options, separated from heretic's.

Everything the launcher does not recognize goes to heretic unchanged, so every
heretic flag, `config.toml`, `HERETIC_*` variables and the trailing MODEL
argument keep working.
"""

import argparse
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ...errors import UsageError, describe_validation_error
from ...names import TEACHER_FORCED_KL_NAME
from ...prompts import prompts_table
from ...settings import TeacherForcedKLSettings
from .scorers import ScorerChoice, resolve_scorer

#: The flag of every scorer setting, in the order of the settings model.
#: `batch_size` is `--kl-batch-size`, since heretic has a `--batch-size` of its own.
SETTING_FLAGS: dict[str, str] = {
    "prompts": "--kl-prompts",
    "kl_tokens": "--kl-tokens",
    "position_weight_decay": "--position-weight-decay",
    "batch_size": "--kl-batch-size",
    "reference_storage": "--reference-storage",
}


#: The usage lines of `heretic-kl --help`: the launcher, `compare` and the two
#: informational options.
USAGE = (
    "heretic-kl [heretic-kl options] [heretic options] MODEL\n"
    "       heretic-kl compare ORIGINAL CANDIDATE [compare options]\n"
    "       heretic-kl --version | --print-config"
)


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
        usage=USAGE,
        add_help=False,
        allow_abbrev=False,
        description=(
            "Runs heretic exactly as the `heretic` command would, with model damage "
            "measured by the chosen scorer (teacher-forced multi-token KL divergence "
            "by default). Every other option is heretic's; see below. MODEL (a "
            "Hugging Face model ID or a local model folder) comes last, as heretic "
            "requires, unless it is given as --model MODEL or in config.toml. "
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
    # Answered by `cli.main` before any parsing; listed here for --help.
    options.add_argument(
        "--version",
        action="store_true",
        help="Print the versions of heretic-teacher-forced-kl and heretic-llm and exit.",
    )
    options.add_argument(
        "--print-config",
        action="store_true",
        help=(
            "Print config.default.toml (every scorer setting with its description "
            "and default) and exit."
        ),
    )
    return parser


def destination(flag: str) -> str:
    """The argparse destination of a flag."""
    return flag.lstrip("-").replace("-", "_")


def flag_of(setting: str) -> str:
    """The flag of a setting (its dotted location), or the location itself."""
    return SETTING_FLAGS.get(setting.split(".", 1)[0], setting)


def converted(setting: str, flag: str, value: str) -> Any:
    """A flag's text converted to the type of its setting, with a one-line error."""
    if setting == "prompts":
        return prompts_table(value, flag)
    annotation = TeacherForcedKLSettings.model_fields[setting].annotation
    converters = {int: (int, "an integer"), float: (float, "a number")}
    if annotation not in converters:
        return value
    convert, expected = converters[annotation]
    try:
        return convert(value)
    except ValueError:
        raise UsageError(f"{flag}: expected {expected}, got {value!r}.") from None


def parse_setting_flags(namespace: argparse.Namespace) -> dict[str, Any]:
    """Converts and validates the scorer-setting flags that were given."""
    flags = {
        setting: converted(setting, flag, getattr(namespace, destination(flag)))
        for setting, flag in SETTING_FLAGS.items()
        if getattr(namespace, destination(flag)) is not None
    }
    try:
        TeacherForcedKLSettings.model_validate(flags)
    except ValidationError as error:
        raise UsageError(
            describe_validation_error(error, "", ".", location_name=flag_of)
        ) from None
    return flags


def parse_arguments(arguments: list[str]) -> LaunchOptions:
    """Splits the command line into the launcher's options and heretic's arguments."""
    namespace, heretic_arguments = build_parser().parse_known_args(arguments)
    scorer = resolve_scorer(namespace.scorer)
    setting_flags = parse_setting_flags(namespace)
    if setting_flags and not scorer.is_teacher_forced_kl:
        given = ", ".join(SETTING_FLAGS[name] for name in setting_flags)
        raise UsageError(
            f"{given}: these options configure {TEACHER_FORCED_KL_NAME}, "
            f"not --scorer {scorer.name}."
        )
    return LaunchOptions(
        scorer=scorer,
        setting_flags=setting_flags,
        non_interactive=namespace.non_interactive,
        heretic_arguments=heretic_arguments,
    )
