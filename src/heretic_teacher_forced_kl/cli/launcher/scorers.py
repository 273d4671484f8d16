# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Scorer names for `heretic-kl --scorer NAME`, and heretic's `scorers` list.

Packages register scorers in the entry-point group `heretic.scorers`, as
`name = "package.module:ClassName"`; this package registers
`teacher-forced-kl`. The name `kl-divergence` always selects heretic's
built-in first-token KL divergence, for A/B runs. With the plugin API, the
chosen scorer takes the place of the KL scorer in heretic's `scorers` list.
"""

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ...errors import UsageError, parse_json
from ...names import (
    BUILT_IN_KL_NAME,
    BUILT_IN_KL_PLUGIN,
    ENTRY_POINT_GROUP,
    TEACHER_FORCED_KL_PLUGIN,
)
from .heretic_arguments import option_value


@dataclass(frozen=True)
class ScorerChoice:
    """A resolved scorer: its name and the plugin path heretic loads it by."""

    name: str
    plugin: str

    @property
    def is_built_in_kl(self) -> bool:
        """Whether this is heretic's built-in first-token KL divergence."""
        return self.plugin == BUILT_IN_KL_PLUGIN

    @property
    def is_teacher_forced_kl(self) -> bool:
        """Whether this is this package's teacher-forced KL divergence."""
        return self.plugin == TEACHER_FORCED_KL_PLUGIN

    @property
    def class_name(self) -> str:
        """The scorer's class name, which names its `[scorer.<ClassName>]` table."""
        return self.plugin.rsplit(".", 1)[-1]


def registered_scorers() -> dict[str, str]:
    """Returns every registered scorer name with its heretic plugin path."""
    scorers = {BUILT_IN_KL_NAME: BUILT_IN_KL_PLUGIN}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        module, _, attribute = entry_point.value.partition(":")
        scorers[entry_point.name] = f"{module.strip()}.{attribute.strip()}"
    return scorers


def resolve_scorer(name: str) -> ScorerChoice:
    """Resolves a scorer name, with a one-line error that lists the registered names."""
    scorers = registered_scorers()
    if name not in scorers:
        raise UsageError(
            f"--scorer: unknown scorer {name!r}; registered scorers: "
            f"{', '.join(sorted(scorers))}."
        )
    return ScorerChoice(name=name, plugin=scorers[name])


def parse_json_list(value: str, source: str) -> list[dict[str, Any]]:
    """Parses a JSON list of scorers, with a one-line error naming its source."""
    scorers: list[Any] = parse_json(value, source, list, "a list of scorers")
    return checked_scorers(scorers, source)


def checked_scorers(scorers: Any, source: str) -> list[dict[str, Any]]:
    """
    `scorers` as heretic takes them, a list of tables that each name a plugin,
    with a one-line error naming `source` otherwise.
    """
    example = f'{{ plugin = "{TEACHER_FORCED_KL_PLUGIN}", optimization = "minimize" }}'
    if not isinstance(scorers, list):
        raise UsageError(
            f"{source}: must be a list of scorer tables such as [{example}]; "
            f"got {scorers!r}."
        )
    for entry in scorers:
        if not isinstance(entry, dict) or not isinstance(entry.get("plugin"), str):
            raise UsageError(
                f"{source}: every entry must be a table that names a plugin, such "
                f"as {example}; got {entry!r}."
            )
    return scorers


def current_scorers(
    heretic_arguments: list[str],
    config: dict[str, Any],
    default: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """
    The `scorers` list heretic would use: `--scorers` on the command line,
    `HERETIC_SCORERS`, `config.toml`, or heretic's `default`, in that order.
    """
    value = option_value(heretic_arguments, "--scorers")
    if value is not None:
        return parse_json_list(value, "--scorers")
    if os.environ.get("HERETIC_SCORERS"):
        return parse_json_list(os.environ["HERETIC_SCORERS"], "HERETIC_SCORERS")
    if "scorers" in config:
        return list(checked_scorers(config["scorers"], "config.toml scorers"))
    return default


def replace_kl_scorer(
    scorers: list[dict[str, Any]], plugin: str
) -> list[dict[str, Any]]:
    """
    Puts `plugin` in place of every KL-measuring scorer (heretic's built-in one or
    any registered one), keeping their optimization settings; other scorers stay.
    Appends it, minimized, when there is none.
    """
    kl_plugins = set(registered_scorers().values()) | {BUILT_IN_KL_PLUGIN}
    replaced: list[dict[str, Any]] = []
    placed = False
    for entry in scorers:
        if entry.get("plugin") in kl_plugins:
            if placed:
                continue
            replaced.append({**entry, "plugin": plugin})
            placed = True
        else:
            replaced.append(entry)
    if not placed:
        replaced.append({"plugin": plugin, "optimization": "minimize"})
    return replaced
