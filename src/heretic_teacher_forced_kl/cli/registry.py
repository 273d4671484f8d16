# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Scorer names for `heretic-kl --scorer NAME`.

Packages register scorers in the entry-point group `heretic.scorers`, as
`name = "package.module:ClassName"`; this package registers
`teacher-forced-kl`. The name `kl-divergence` always selects heretic's
built-in first-token KL divergence, for A/B runs.
"""

from dataclasses import dataclass
from importlib.metadata import entry_points

#: The entry-point group in which packages register scorer plugins.
ENTRY_POINT_GROUP = "heretic.scorers"

#: The name that selects heretic's built-in first-token KL divergence.
BUILT_IN_KL_NAME = "kl-divergence"

#: The import path of heretic's built-in KL divergence scorer (heretic master).
BUILT_IN_KL_PLUGIN = "heretic.scorers.kl_divergence.KLDivergence"

#: The name of this package's scorer, and the launcher's default.
TEACHER_FORCED_KL_NAME = "teacher-forced-kl"


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
        raise ValueError(
            f"--scorer: unknown scorer {name!r}; registered scorers: "
            f"{', '.join(sorted(scorers))}."
        )
    return ScorerChoice(name=name, plugin=scorers[name])
