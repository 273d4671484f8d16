# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Teacher-forced KL on a multimodal model, loaded by heretic-llm itself with
`AutoModelForImageTextToText` and wrapped in its LoRA adapters.
"""

from pathlib import Path

import pytest
import torch.nn.functional as F

from development.damage import damage
from development.heretic_host import heretic_model, prompts
from development.tiny_models import build_tiny_multimodal_model
from heretic_teacher_forced_kl import TeacherForcedKLEngine
from tests.support.tolerances import first_token_log_probabilities, model_kl_tolerance


class NoProcessor:
    """heretic loads a multimodal model's processor only to save it; text needs none."""

    @staticmethod
    def from_pretrained(*arguments: object, **keywords: object) -> None:
        return None


def test_multimodal_model_scores_like_text_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import heretic.model

    monkeypatch.setattr(heretic.model, "AutoProcessor", NoProcessor)
    # In float64, so that the comparisons below have a derived tolerance
    # (tests/support/tolerances.py).
    model = heretic_model(
        build_tiny_multimodal_model(tmp_path / "gemma3"),
        batch_size=3,
        dtypes=["float64"],
    )
    assert (
        type(model.model.base_model.model).__name__ == "Gemma3ForConditionalGeneration"
    )

    engine = TeacherForcedKLEngine(kl_tokens=4, batch_size=3, log=lambda _: None)
    engine.build_reference(model, prompts())
    original = engine.measure(model.model, details=True)
    assert abs(original.mean) <= model_kl_tolerance(model, prompts(), 4, 0.0)
    assert original.top1_agreement is not None
    assert bool(original.top1_agreement[original.counted].all())

    single = TeacherForcedKLEngine(kl_tokens=1, batch_size=3, log=lambda _: None)
    single.build_reference(model, prompts())
    baseline = first_token_log_probabilities(model, prompts())
    damage(model, strength=5.0)
    current = first_token_log_probabilities(model, prompts())
    first_token_kl = F.kl_div(
        current, baseline, reduction="batchmean", log_target=True
    ).item()

    damaged = engine.measure(model.model)
    assert damaged.mean > 1e-4
    # heretic's logits reach it rounded to float32 by `generate`.
    tolerance = model_kl_tolerance(
        model, prompts(), 1, first_token_kl, float32_logits=True
    )
    assert abs(single.score(model.model) - first_token_kl) <= tolerance
    assert abs(damaged.first_token_mean - first_token_kl) <= tolerance
