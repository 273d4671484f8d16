# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The mathematics of teacher-forced KL, on hand-made tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from heretic_teacher_forced_kl.adapters.display import format_position_means
from heretic_teacher_forced_kl.metric.divergence import (
    counted_positions,
    kl_divergence_per_position,
    log_probabilities,
    position_weights,
)
from heretic_teacher_forced_kl.metric.measurement import (
    masked_position_means,
    masked_weighted_mean,
)

#: float32's unit roundoff: a float32 operation is exact to a relative 2**-24.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24


def test_kl_per_position_matches_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    reference = log_probabilities(torch.randn(2, 3, 11, generator=generator))
    current = log_probabilities(torch.randn(2, 3, 11, generator=generator))
    terms = reference.double().exp() * (reference.double() - current.double())
    expected = terms.sum(-1)
    # The same float32 inputs, summed in float32: each of the V = 11 terms is off
    # by at most 4 roundings (exp, exact to one unit in the last place, counts
    # two; the subtraction and the product one each) and the sum adds at most
    # V - 1 more, each relative to the absolute sum of the terms: an error of at
    # most (V + 3) * 2**-24 * sum |t_i| per position, in any summation order.
    bound = (terms.shape[-1] + 3) * FLOAT32_UNIT_ROUNDOFF * terms.abs().sum(-1)
    error = (kl_divergence_per_position(reference, current).double() - expected).abs()
    assert bool((error <= bound).all())


def test_kl_of_identical_distributions_is_zero() -> None:
    logits = torch.randn(3, 4, 50)
    log_probs = log_probabilities(logits)
    assert float(kl_divergence_per_position(log_probs, log_probs).abs().max()) == 0.0


def test_log_probabilities_are_float32_even_for_bfloat16_logits() -> None:
    assert (
        log_probabilities(torch.randn(2, 5, dtype=torch.bfloat16)).dtype
        == torch.float32
    )


def test_first_position_equals_heretic_batchmean() -> None:
    reference = log_probabilities(torch.randn(4, 1, 20))
    current = log_probabilities(torch.randn(4, 1, 20))
    heretic = F.kl_div(
        current[:, 0], reference[:, 0], reduction="batchmean", log_target=True
    )
    ours = masked_weighted_mean(
        kl_divergence_per_position(reference, current),
        torch.ones(4, 1, dtype=torch.bool),
        position_weights(1, 1.0),
    )
    # Two float32 computations of the same 4 rows of V = 20 terms, each within
    # (V + 3) * 2**-24 * sum |t_i| of the exact value per row (see above), and
    # averaged: they differ by at most twice the mean of that bound.
    terms = reference.double().exp() * (reference.double() - current.double())
    bound = 2 * (20 + 3) * FLOAT32_UNIT_ROUNDOFF * float(terms.abs().sum(-1).mean())
    assert abs(ours - float(heretic)) <= bound


def test_counted_positions_include_first_end_of_sequence_only() -> None:
    continuation = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 0, 0, 0]])
    counted = counted_positions(continuation, torch.tensor([2, 9]))
    assert counted.tolist() == [
        [True, True, False, False],
        [True, True, True, True],
        [True, False, False, False],
    ]


def test_mean_is_over_counted_positions_and_not_scaled_by_length() -> None:
    values = torch.tensor([[1.0, 3.0, 100.0], [2.0, 2.0, 2.0]])
    counted = torch.tensor([[True, True, False], [True, True, True]])
    assert masked_weighted_mean(
        values, counted, position_weights(3, 1.0)
    ) == pytest.approx(2.0)


def test_geometric_weights_emphasize_early_positions() -> None:
    values = torch.tensor([[1.0, 2.0, 4.0]])
    counted = torch.ones(1, 3, dtype=torch.bool)
    weights = position_weights(3, 0.5)
    assert weights.tolist() == [1.0, 0.5, 0.25]
    assert masked_weighted_mean(values, counted, weights) == pytest.approx(3.0 / 1.75)


def test_mean_without_counted_positions_is_an_error() -> None:
    with pytest.raises(ValueError, match="No position is counted"):
        masked_weighted_mean(
            torch.ones(1, 2),
            torch.zeros(1, 2, dtype=torch.bool),
            position_weights(2, 1.0),
        )


def test_position_means_skip_masked_prompts() -> None:
    values = torch.tensor([[1.0, 5.0], [3.0, 0.0]])
    counted = torch.tensor([[True, True], [True, False]])
    means = masked_position_means(values, counted)
    assert means[0] == pytest.approx(2.0)
    assert means[1] == pytest.approx(5.0)
    assert math.isnan(
        masked_position_means(values, torch.tensor([[True, False], [True, False]]))[1]
    )


def test_position_means_display_is_compact() -> None:
    assert (
        format_position_means([0.1, 0.02, float("nan")], [2, 1, 0]) == "0.1 · 0.02 · -"
    )
    long = format_position_means([float(index) for index in range(16)], [1] * 16)
    assert long == "0 · 1 · 2 · 3 · 4 · 5 · … · 15"
