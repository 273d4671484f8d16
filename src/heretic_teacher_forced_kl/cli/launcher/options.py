# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The launcher's own command-line options, separated from heretic's.

Everything the launcher does not recognize goes to heretic unchanged, so every
heretic flag, `config.toml`, `HERETIC_*` variables and the trailing MODEL
argument keep working.
"""

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import UsageError
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


#: heretic master's own settings for choosing and saving a trial without menus,
#: which would clash with `--save-to`.
HERETIC_SAVING_SETTINGS = ("trial_index", "model_action", "save_directory")
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

    #: Whether `--scorer` was given (rather than left at its default).
    scorer_given: bool = False

    #: The folder that `--save-to` saves models into, if given.
    save_to: Path | None = None

    #: The trial numbers of `--save-trials`, or None for every Pareto-optimal trial.
    save_trials: tuple[int, ...] | None = None


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
            "Answer heretic's menus without a terminal: continue a study found in "
            "the checkpoint with its saved settings, print the Pareto front after "
            "the study and exit (or save models, see --save-to). This is automatic "
            "when standard input is not a terminal."
        ),
    )
    options.add_argument(
        "--save-to",
        metavar="DIR",
        help=(
            "After the study, save every Pareto-optimal trial (or those of "
            "--save-trials) with heretic's own saving code into DIR/trial-N, as a "
            "merged model (heretic's --export-strategy adapter saves the LoRA "
            "adapter only). Implies --non-interactive. With a finished study in the "
            "checkpoint, the run goes straight to saving."
        ),
    )
    options.add_argument(
        "--save-trials",
        metavar="N[,N...]",
        help=(
            "The trials that --save-to saves, by the numbers heretic shows as "
            "[Trial N]; they must be on the Pareto front (default: all of it)."
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
    """
    The flag of a setting by its dotted location, with the key inside the flag's
    value where there is one (`--kl-prompts key 'splt'`), or the location itself.
    """
    name, _, key = setting.partition(".")
    if name not in SETTING_FLAGS:
        return setting
    # A plain `--kl-prompts VALUE` is the dataset itself.
    if key and key != "dataset":
        return f"{SETTING_FLAGS[name]} key {key!r}"
    return SETTING_FLAGS[name]


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
    """
    The scorer-setting flags that were given, converted to their settings' types;
    the settings model validates them together with `config.toml`
    (`config.effective_settings`).
    """
    return {
        setting: converted(setting, flag, getattr(namespace, destination(flag)))
        for setting, flag in SETTING_FLAGS.items()
        if getattr(namespace, destination(flag)) is not None
    }


def parse_save_trials(value: str | None) -> tuple[int, ...] | None:
    """The trial numbers of `--save-trials` ("3" or "3,7"), with a one-line error."""
    if value is None:
        return None
    try:
        trials = tuple(int(part) for part in value.split(","))
    except ValueError:
        trials = ()
    if not trials or min(trials) < 1:
        raise UsageError(
            f"--save-trials: expected trial numbers as heretic shows them ([Trial N]), "
            f"such as 3 or 3,7; got {value!r}."
        )
    return tuple(dict.fromkeys(trials))


def check_save_folder(value: str) -> Path:
    """Checks the folder of `--save-to` before anything runs: a folder that can be written."""
    folder = Path(value).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--save-to: {value!r} is a file; give a folder.")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"--save-to: cannot write to {str(existing)!r}; give a folder you can write to."
        )
    return folder


def parse_arguments(arguments: list[str]) -> LaunchOptions:
    """Splits the command line into the launcher's options and heretic's arguments."""
    namespace, heretic_arguments = build_parser().parse_known_args(arguments)
    scorer = resolve_scorer(namespace.scorer or TEACHER_FORCED_KL_NAME)
    setting_flags = parse_setting_flags(namespace)
    if setting_flags and not scorer.is_teacher_forced_kl:
        given = ", ".join(SETTING_FLAGS[name] for name in setting_flags)
        raise UsageError(
            f"{given}: these options configure {TEACHER_FORCED_KL_NAME}, "
            f"not --scorer {scorer.name}."
        )
    save_trials = parse_save_trials(namespace.save_trials)
    if save_trials is not None and namespace.save_to is None:
        raise UsageError(
            "--save-trials: give --save-to DIR too, the folder to save the trials into."
        )
    save_to = (
        None if namespace.save_to is None else check_save_folder(namespace.save_to)
    )
    return LaunchOptions(
        scorer=scorer,
        setting_flags=setting_flags,
        non_interactive=namespace.non_interactive or save_to is not None,
        heretic_arguments=heretic_arguments,
        scorer_given=namespace.scorer is not None,
        save_to=save_to,
        save_trials=save_trials,
    )
