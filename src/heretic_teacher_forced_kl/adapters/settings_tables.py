# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The scorer's raw `config.toml` tables, checked for the keys that heretic drops.

heretic master keeps only the keys that a plugin's settings model knows before
it validates the plugin's table, so a misspelled key (`kl_token = 5`) would
vanish without a word and the study would run with the default. At `init` the
scorer reads the same tables from heretic's settings, where heretic's evaluator
finds them (`[scorer.<ClassName>]`, and `[scorer.<ClassName>_<instance_name>]`
for each configured instance), and validates them whole, with the one-line
error that the launcher gives for the same table.
"""

import re
from typing import Any

from ..errors import UsageError
from ..settings import CONFIG_FILE, validate_settings

#: The top-level table of `config.toml` that holds the plugin tables.
SCORER_TABLES = "scorer"


def plugin_class_name(plugin: str) -> str:
    """The class name of a `scorers` entry's plugin (`module.ClassName` or `file.py:ClassName`)."""
    return re.split(r"[.:]", plugin)[-1]


def entry_value(entry: Any, key: str) -> Any:
    """A field of a `scorers` entry, which is heretic's `ScorerConfig` or a plain table."""
    return entry.get(key) if isinstance(entry, dict) else getattr(entry, key, None)


def configured_scorers(heretic_settings: Any) -> list[tuple[str, str | None]]:
    """The (class name, instance name) of every entry of heretic's `scorers` setting."""
    return [
        (plugin_class_name(plugin), entry_value(entry, "instance_name") or None)
        for entry in getattr(heretic_settings, "scorers", None) or []
        if isinstance(plugin := entry_value(entry, "plugin"), str)
    ]


def check_settings_tables(heretic_settings: Any, class_name: str) -> None:
    """
    Stops with a one-line `UsageError` when a table of the scorer in heretic's
    settings holds a key that the settings model does not know (heretic drops
    such keys before it validates), or when a `[scorer.<ClassName>_<name>]` table
    belongs to no configured instance (heretic ignores such a table).
    """
    extra = getattr(heretic_settings, "model_extra", None) or {}
    tables = extra.get(SCORER_TABLES)
    if not isinstance(tables, dict):
        return
    scorers = configured_scorers(heretic_settings)
    instance_names = sorted(
        instance_name
        for scorer_class, instance_name in scorers
        if scorer_class == class_name and instance_name
    )
    other_classes = {scorer_class for scorer_class, _ in scorers}
    for name, table in tables.items():
        if name == class_name or (
            name.startswith(f"{class_name}_") and name not in other_classes
        ):
            instance_name = name.removeprefix(class_name).removeprefix("_")
            location = f"{SCORER_TABLES}.{name}"
            if instance_name and instance_name not in instance_names:
                configured = ", ".join(instance_names) or "none"
                raise UsageError(
                    f"{CONFIG_FILE} [{location}]: no entry of scorers runs "
                    f"{class_name} with instance_name {instance_name!r} (configured "
                    f"instance names: {configured}); rename the table or the instance."
                )
            if not isinstance(table, dict):
                raise UsageError(f"{CONFIG_FILE} [{location}] must be a table.")
            validate_settings(table, location)
