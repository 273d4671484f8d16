# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
What the launcher reads besides its options: `config.toml` and the model heretic will load.

Scorer settings come from flags or from the `[scorer.TeacherForcedKL]` table of
`config.toml`; flags win.
"""

import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ...errors import UsageError, describe_validation_error
from ...names import SETTINGS_TABLE, TEACHER_FORCED_KL_CLASS_NAME
from ...settings import TeacherForcedKLSettings

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

#: heretic's own settings file, read from the working directory.
CONFIG_FILE = "config.toml"


def read_config_file(path: Path = Path(CONFIG_FILE)) -> dict[str, Any]:
    """Reads heretic's `config.toml` from the working directory, if there is one."""
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: invalid TOML ({error}).") from None


def config_scorer_table(config: dict[str, Any]) -> dict[str, Any]:
    """The `[scorer.TeacherForcedKL]` table of a parsed `config.toml`."""
    table = config.get("scorer", {}).get(TEACHER_FORCED_KL_CLASS_NAME, {})
    if not isinstance(table, dict):
        raise UsageError(f"{CONFIG_FILE}: [{SETTINGS_TABLE}] must be a table.")
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
        raise UsageError(
            describe_validation_error(
                error,
                prefix=f"{CONFIG_FILE} [{SETTINGS_TABLE}] ",
                suffix=" (see `heretic-kl --print-config` for every setting).",
            )
        ) from None
    return settings, "prompts" in merged
