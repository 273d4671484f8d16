# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Teacher-forced KL for heretic-llm 1.4.0, which has no scorer plugins.

1.4.0's `heretic.main.run` builds `Evaluator(settings, model)` and, for every
trial, calls `get_score()`, which returns `((kl_score, refusals_score),
kl_divergence, refusals)`. The evaluator built here keeps everything of
1.4.0's evaluator (prompt loading, refusal counting, the baseline) and only
replaces the first-token KL divergence with the teacher-forced one, combined
into the objective by 1.4.0's `kl_divergence_scale` and `kl_divergence_target`
rule.

A continued study that has run all its trials only shows its results and
saves models, so its teacher-forced KL starts (prompts loaded, reference
generated) only if more trials are run: then from the original model, with
heretic's LoRA adapter disabled for the moment.
"""

from typing import Any

from rich.markup import escape

from ...console import print
from ...errors import RunError, UsageError
from ...metric.engine import TeacherForcedKLEngine
from ...settings import TeacherForcedKLSettings
from ..display import rich_display
from ..host import heretic_prompt_loader, load_scorer_prompts, start_engine

#: Teacher-forced KL divided by first-token KL: the median over the 40
#: abliterations of SmolLM2-135M-Instruct in docs/evidence, by kl_tokens.
MEASURED_SCALE = {3: 0.54, 8: 0.40, 16: 0.42}


def target_note(settings: Any, kl_tokens: int) -> str | None:
    """
    A one-line note when heretic's default `kl_divergence_target` is in force
    and applies to teacher-forced KL, which runs below first-token KL; None
    when the user set the target or measures heretic's own first-token KL.
    """
    if kl_tokens == 1 or "kl_divergence_target" in settings.model_fields_set:
        return None
    target = settings.kl_divergence_target
    scale = MEASURED_SCALE.get(kl_tokens)
    if scale is None:
        measured = ", ".join(
            f"{value:.2f} x at {tokens}" for tokens, value in MEASURED_SCALE.items()
        )
        return (
            f"Note: heretic's default kl_divergence_target {target:g} now applies to "
            f"teacher-forced KL, which runs below first-token KL ({measured} tokens, "
            "measured on SmolLM2-135M-Instruct; see the README); pass "
            "--kl-divergence-target to choose another."
        )
    return (
        f"Note: heretic's default kl_divergence_target {target:g} now applies to "
        f"teacher-forced KL, about {scale:.2f} x first-token KL at {kl_tokens} tokens "
        "(measured on SmolLM2-135M-Instruct; see the README); for heretic's "
        f"first-token threshold, pass --kl-divergence-target {target * scale:.2g}."
    )


def kl_objective(
    kl_divergence: float,
    refusals_score: float,
    kl_divergence_scale: float,
    kl_divergence_target: float,
) -> float:
    """
    heretic 1.4.0's KL objective: above the target, the scaled KL divergence; below
    it, the KL term stops rewarding further reduction and follows the refusal score,
    so that the optimizer spends its effort on refusals instead.
    """
    if kl_divergence >= kl_divergence_target:
        return kl_divergence / kl_divergence_scale
    return refusals_score * kl_divergence_target / kl_divergence_scale


def refusals_objective(refusals: int, base_refusals: int) -> float:
    """heretic 1.4.0's refusal objective: refusals relative to the original model's."""
    return refusals / base_refusals if base_refusals > 0 else float(refusals)


def teacher_forced_evaluator(
    base: type,
    scorer_settings: TeacherForcedKLSettings,
    prompts_set_explicitly: bool,
    deferred: bool = False,
    prompts_problem: str | None = None,
) -> type:
    """
    Returns a subclass of 1.4.0's `heretic.evaluator.Evaluator` (`base`) that
    measures teacher-forced KL with `scorer_settings`.

    Unless the prompts were set explicitly, the KL prompts are 1.4.0's
    `good_evaluation_prompts`, which its evaluator has already loaded. With
    `deferred` (a finished study), the measure starts at the first score;
    `prompts_problem` says why the prompts cannot be loaded, if so.
    """

    class TeacherForcedEvaluator(base):  # type: ignore[valid-type, misc]
        """1.4.0's evaluator, with teacher-forced KL divergence in place of first-token KL."""

        teacher_forced_kl: TeacherForcedKLEngine | None = None

        def __init__(self, settings: Any, model: Any) -> None:
            super().__init__(settings, model)
            note = target_note(settings, scorer_settings.kl_tokens)
            if note is not None:
                print()
                print(f"[yellow]{escape(note)}[/]")
            if not deferred:
                self.teacher_forced_kl = self.start_teacher_forced_kl()

        def start_teacher_forced_kl(self) -> TeacherForcedKLEngine:
            """Loads the KL prompts and builds the reference from the original model."""
            if prompts_problem is not None:
                raise UsageError(prompts_problem + ".")
            if prompts_set_explicitly:
                prompts = load_scorer_prompts(
                    heretic_prompt_loader(self.settings), scorer_settings
                )
            else:
                prompts = self.good_prompts
            return start_engine(scorer_settings, self.settings, self.model, prompts)

        def start_deferred_teacher_forced_kl(self) -> TeacherForcedKLEngine:
            """Starts the measure during a trial, from the model without heretic's adapter."""
            disable_adapter = getattr(self.model.model, "disable_adapter", None)
            if disable_adapter is None:
                raise RunError(
                    "teacher-forced KL: heretic's model has no LoRA adapter to "
                    "disable, so the original model's reference cannot be built "
                    "for more trials of a finished study."
                )
            print()
            print("Starting teacher-forced KL divergence for the additional trials...")
            with disable_adapter():
                return self.start_teacher_forced_kl()

        def get_score(self) -> tuple[tuple[float, float], float, int]:
            if self.teacher_forced_kl is None:
                self.teacher_forced_kl = self.start_deferred_teacher_forced_kl()
            print(
                "  * Measuring teacher-forced KL divergence over "
                f"[bold]{scorer_settings.kl_tokens}[/] tokens..."
            )
            measurement = self.teacher_forced_kl.measure(self.model.model)
            kl_divergence = measurement.mean
            print(
                f"  * KL divergence (teacher-forced): [bold]{rich_display(measurement)}[/]"
            )

            print("  * Counting model refusals...")
            refusals = self.count_refusals()
            print(f"  * Refusals: [bold]{refusals}[/]/{len(self.bad_prompts)}")

            refusals_score = refusals_objective(refusals, self.base_refusals)
            kl_score = kl_objective(
                kl_divergence,
                refusals_score,
                self.settings.kl_divergence_scale,
                self.settings.kl_divergence_target,
            )
            return (kl_score, refusals_score), kl_divergence, refusals

    return TeacherForcedEvaluator
