# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The statistics of `report.py`, on small measurements whose answers are known."""

import math

import pytest
import torch

from heretic_teacher_forced_kl.metric.measurement import KLMeasurement
from heretic_teacher_forced_kl.report import build_report, percentile


def measurement() -> KLMeasurement:
    """
    Two prompts of three positions; the second prompt's reference ended after
    its second token, so its third position is not counted.
    """
    counted = torch.tensor([[True, True, True], [True, True, False]])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.7, 0.0]])
    reference = torch.log(torch.tensor([[0.9, 0.6, 0.3], [0.99, 0.85, 0.5]]))
    current = torch.log(torch.tensor([[0.8, 0.6, 0.1], [0.9, 0.5, 0.5]]))
    agreement = torch.tensor([[True, True, False], [True, False, True]])
    return KLMeasurement(
        kl=kl,
        counted=counted,
        weights=torch.ones(3, dtype=torch.float64),
        targets=torch.zeros(2, 3, dtype=torch.long),
        current_target_log_probabilities=current,
        reference_target_log_probabilities=reference,
        top1_agreement=agreement,
    )


def test_percentile_interpolates_like_numpy() -> None:
    values = torch.tensor([1.0, 2.0, 4.0, 8.0])
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.9) == pytest.approx(6.8)
    assert percentile(values, 1.0) == 8.0
    assert math.isnan(percentile(torch.tensor([]), 0.5))


def test_report_of_known_measurement() -> None:
    report = build_report(measurement())
    counted_kl = [0.1, 0.2, 0.3, 0.5, 0.7]
    assert report.counted_tokens == 5
    assert report.mean_kl == pytest.approx(sum(counted_kl) / 5)
    prompt_means = [0.2, 0.6]
    assert report.prompt_mean_kl == pytest.approx(prompt_means)
    # The standard error of two samples is |a - b| / 2.
    assert report.mean_kl_standard_error == pytest.approx(0.2)
    assert report.median_kl == pytest.approx(0.3)
    assert report.percentile_90_kl == pytest.approx(0.62)
    assert report.maximum_kl == pytest.approx(0.7)
    assert report.first_token_kl == pytest.approx(0.3)
    assert report.top1_agreement == pytest.approx(3 / 5)

    nll_change = [
        math.log(0.9 / 0.8),
        0.0,
        math.log(0.3 / 0.1),
        math.log(0.99 / 0.9),
        math.log(0.85 / 0.5),
    ]
    assert report.negative_log_likelihood_change == pytest.approx(sum(nll_change) / 5)
    assert report.perplexity_ratio == pytest.approx(math.exp(sum(nll_change) / 5))
    assert report.mean_probability_change == pytest.approx(
        (-0.1 + 0.0 - 0.2 - 0.09 - 0.35) / 5
    )

    assert [position.counted for position in report.positions] == [2, 2, 1]
    assert [position.mean_kl for position in report.positions] == pytest.approx(
        [0.3, 0.45, 0.3]
    )
    assert math.isnan(report.positions[2].mean_kl_standard_error)
    assert report.positions[1].top1_agreement == pytest.approx(0.5)

    buckets = {bucket.label: bucket for bucket in report.confidence_buckets}
    assert list(buckets) == ["[0, 0.5)", "[0.5, 0.8)", "[0.8, 0.95)", "[0.95, 1]"]
    # p_original: 0.9, 0.6, 0.3 | 0.99, 0.85 (0.5 is not counted).
    assert [bucket.count for bucket in report.confidence_buckets] == [1, 1, 2, 1]
    assert buckets["[0.8, 0.95)"].mean_kl == pytest.approx((0.1 + 0.7) / 2)
    assert buckets["[0.95, 1]"].mean_kl == pytest.approx(0.5)
    assert sum(bucket.share for bucket in report.confidence_buckets) == pytest.approx(
        1.0
    )


def test_report_needs_details() -> None:
    plain = measurement()
    plain.top1_agreement = None
    with pytest.raises(ValueError, match="details=True"):
        build_report(plain)
