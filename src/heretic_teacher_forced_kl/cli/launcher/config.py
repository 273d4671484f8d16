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

from ...errors import UsageError
from ...names import SETTINGS_TABLE, TEACHER_FORCED_KL_CLASS_NAME
from ...settings import (
    CONFIG_FILE,
    TeacherForcedKLSettings,
    table_location,
    validate_settings,
)
from .options import flag_of

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def read_config_file(path: Path = Path(CONFIG_FILE)) -> dict[str, Any]:
    """Reads heretic's `config.toml` from the working directory, if there is one."""
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: invalid TOML ({error}).") from None
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at "
            f"offset {error.start}); save it as UTF-8, as TOML requires."
        ) from None
    except OSError as error:
        raise UsageError(f"{path}: cannot be read ({error.strerror}).") from None


def config_scorer_table(config: dict[str, Any]) -> dict[str, Any]:
    """The `[scorer.TeacherForcedKL]` table of a parsed `config.toml`."""
    tables = config.get("scorer", {})
    if not isinstance(tables, dict):
        raise UsageError(
            f"{CONFIG_FILE}: scorer must be a table of scorer settings tables, such "
            f"as [{SETTINGS_TABLE}]; got {tables!r} (heretic's list of scorers is "
            "scorers = [...])."
        )
    table = tables.get(TEACHER_FORCED_KL_CLASS_NAME, {})
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
    in_config = table_location(SETTINGS_TABLE)

    def location_name(location: str) -> str:
        """A bad setting by the flag or the `config.toml` key that gave it."""
        if location.split(".", 1)[0] in setting_flags:
            return flag_of(location)
        return in_config(location)

    settings = validate_settings(merged, location_name=location_name)
    return settings, "prompts" in merged
