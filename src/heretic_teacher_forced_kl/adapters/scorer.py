# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
`TeacherForcedKL`, the heretic scorer plugin.

Enable it in `config.toml`:

    scorers = [
        { plugin = "heretic.scorers.keyword_rate.KeywordRate", optimization = "minimize" },
        { plugin = "heretic_teacher_forced_kl.TeacherForcedKL", optimization = "minimize" },
    ]

    [scorer.TeacherForcedKL]
    kl_tokens = 3
"""

from typing import Any

from heretic.utils import Prompt

# Absolute imports, so that heretic can also load this file by its path
# (`path/to/scorer.py:TeacherForcedKL`), outside its package.
from heretic_teacher_forced_kl.adapters.host import (
    heretic_model,
    host_batch_size,
    load_scorer_prompts,
)
from heretic_teacher_forced_kl.adapters.plugin_api import Score, Scorer
from heretic_teacher_forced_kl.console import print
from heretic_teacher_forced_kl.display import markdown_display, rich_display
from heretic_teacher_forced_kl.engine import KLMeasurement, TeacherForcedKLEngine
from heretic_teacher_forced_kl.settings import (
    TeacherForcedKLSettings,
    validate_settings,
)


class TeacherForcedKL(Scorer):
    """
    Teacher-forced multi-token KL divergence between the current and the original model.

    Before any trial, the original model greedily generates `kl_tokens` tokens per
    prompt. Each trial feeds those same tokens through the current model in one
    forward pass and averages KL(original || current) over every continuation
    position up to the reference's end of sequence. Lower is better (less damage).
    """

    settings: TeacherForcedKLSettings
    prompts: list[Prompt]
    engine: TeacherForcedKLEngine
    last_measurement: KLMeasurement | None

    @property
    def reproducible(self) -> bool:
        return True

    @property
    def score_name(self) -> str:
        kl_tokens = self.settings.kl_tokens if self.settings is not None else 3
        return f"KL divergence (teacher-forced, {kl_tokens} tokens)"

    @classmethod
    def validate_settings(
        cls, raw_namespace: dict[str, Any] | None
    ) -> TeacherForcedKLSettings:
        """Validates the `[scorer.TeacherForcedKL]` table with a one-line error."""
        return validate_settings(raw_namespace)

    def init(self, ctx: Any) -> None:
        if self.settings is None:
            self.settings = TeacherForcedKLSettings()
        model = heretic_model(ctx)

        print()
        print(
            "Loading TeacherForcedKL evaluation prompts from "
            f"[bold]{self.settings.prompts.dataset}[/]..."
        )
        self.prompts = load_scorer_prompts(self.heretic_settings, self.settings.prompts)
        print(f"* [bold]{len(self.prompts)}[/] prompts loaded")

        print(
            f"* Generating the original model's [bold]{self.settings.kl_tokens}[/]-token "
            "reference continuations..."
        )
        self.engine = TeacherForcedKLEngine.from_settings(
            self.settings, host_batch_size(self.heretic_settings), log=print
        )
        self.engine.build_reference(model, self.prompts)
        self.last_measurement = None

    def get_score(self, ctx: Any) -> Score:
        measurement = self.engine.measure(heretic_model(ctx).model)
        self.last_measurement = measurement
        return Score(
            value=measurement.mean,
            rich_display=rich_display(measurement),
            md_display=markdown_display(measurement),
        )

    def get_baseline_score(self, ctx: Any) -> Score:
        # The reference comes from the same teacher-forced pass over the original
        # model that scoring uses, so the original model's score is 0 exactly.
        return Score(
            value=0,
            rich_display="0 (by definition)",
            md_display="0 *(by definition)*",
        )
