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

from typing import Any, ClassVar

# Absolute imports, so that heretic can also load this file by its path
# (`path/to/scorer.py:TeacherForcedKL`), outside its package.
from heretic_teacher_forced_kl.adapters.display import (
    markdown_display,
    rich_display,
)
from heretic_teacher_forced_kl.adapters.host import (
    heretic_model,
    load_scorer_prompts,
    prompt_loader,
    start_engine,
)
from heretic_teacher_forced_kl.adapters.plugin_api import Score, Scorer
from heretic_teacher_forced_kl.adapters.settings_tables import check_settings_tables
from heretic_teacher_forced_kl.metric.engine import TeacherForcedKLEngine
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
    prompts: list[Any]
    engine: TeacherForcedKLEngine | None = None

    #: Whether heretic's run measures anything. The launcher sets it to False
    #: for a run that only saves a trial of a finished study, which then needs
    #: neither the KL prompts nor the reference.
    measuring: ClassVar[bool] = True

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
        # heretic dropped the keys of the table that the settings model does not
        # know before validating it; a misspelled key stops the study here.
        check_settings_tables(self.heretic_settings, type(self).__name__)
        if self.settings is None:
            self.settings = TeacherForcedKLSettings()
        if not type(self).measuring:
            return
        model = heretic_model(ctx)
        # The public plugin API loads prompts as heretic loads its own.
        self.prompts = load_scorer_prompts(
            prompt_loader(ctx, self.heretic_settings), self.settings
        )
        self.engine = start_engine(
            self.settings, self.heretic_settings, model, self.prompts
        )

    def get_score(self, ctx: Any) -> Score:
        if self.engine is None:
            raise RuntimeError(
                "TeacherForcedKL measures nothing in a run that only saves a trial."
            )
        measurement = self.engine.measure(heretic_model(ctx).model)
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
