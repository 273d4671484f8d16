# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Stand-ins for heretic's plugin API on heretic-llm 1.4.0, which has none.

They keep the scorer importable and usable by forks that pass it a context
holding heretic's model, with the same constructor, properties and `Score`
fields as `heretic.scorer.Scorer` and `heretic.scorer.Score`.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


@dataclass
class Score:
    """The result of a scorer, with the same fields as `heretic.scorer.Score`."""

    value: float
    rich_display: str
    md_display: str


class Scorer(ABC):
    """A stand-in for `heretic.scorer.Scorer` on hosts without the plugin API."""

    def __init__(self, heretic_settings: Any, settings: Any = None) -> None:
        self.heretic_settings = heretic_settings
        self.settings = settings

    @property
    def reproducible(self) -> bool:
        """Whether runs with this scorer can be reproduced bit for bit."""
        return False

    @property
    def score_name(self) -> str:
        """The name under which the score is shown."""
        return self.__class__.__name__

    def init(self, ctx: Any) -> None:
        """One-time setup, before the model is modified."""
        return None

    @abstractmethod
    def get_score(self, ctx: Any) -> Score:
        """Returns the score of the current model."""

    def get_baseline_score(self, ctx: Any) -> Score:
        """Returns the score of the original model."""
        return self.get_score(ctx)
