# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The result of one measurement, and the masked means that summarize it.

`KLMeasurement` holds KL(original || current) for every prompt and position,
with the mask of the positions that count. The scorer's value, the
per-position means of the console line and the per-prompt means of the
comparison report are all masked means of it, computed here once.
"""

from dataclasses import dataclass

import torch
from torch import Tensor


def counted_values(values: Tensor, counted: Tensor) -> Tensor:
    """`values` in float64 where `counted` is true, and 0 elsewhere (even where they are infinite)."""
    return torch.where(counted, values.double(), 0.0)


def masked_weighted_mean(
    values: Tensor,
    counted: Tensor,
    weights: Tensor,
) -> float:
    """
    Returns the weighted mean of `values` over the positions where `counted` is true.

    `values` and `counted` have the shape (prompts, positions), `weights` has the
    shape (positions,). With equal weights, this is the mean over all counted
    positions of all prompts (a "batchmean" per position): it does not grow
    with the number of positions.
    """
    weight_matrix = weights.to(values.device, torch.float64).expand_as(values)
    counted = counted.to(values.device, torch.bool)
    mask = counted * weight_matrix
    total_weight = mask.sum()
    if total_weight.item() == 0:
        raise ValueError(
            "No position is counted, so the mean KL divergence is undefined."
        )
    # Positions that do not count are left out, not multiplied by 0: an infinite
    # value there would make the product NaN.
    return float((counted_values(values, counted) * mask).sum() / total_weight)


def masked_means(values: Tensor, counted: Tensor, dimension: int) -> Tensor:
    """
    Returns the means of `values` (prompts, positions) over `dimension`, counting
    only the entries where `counted` is true: per position with dimension 0 (the
    mean over the prompts that count it), per prompt with dimension 1. A mean
    over no counted entry is NaN. The result is a float64 tensor on the CPU.
    """
    counted = counted.to(values.device, torch.bool)
    totals = counted_values(values, counted).sum(dim=dimension)
    counts = counted.sum(dim=dimension)
    return torch.where(counts > 0, totals / counts.clamp(min=1), torch.nan).cpu()


def masked_position_means(values: Tensor, counted: Tensor) -> list[float]:
    """
    Returns, for every position, the mean of `values` over the prompts that count it.

    Positions that no prompt counts (every reference ended earlier) are NaN.
    """
    return [float(mean) for mean in masked_means(values, counted, dimension=0)]


@dataclass
class KLMeasurement:
    """
    The KL divergence of one model against the reference, per prompt and position.

    `kl` (prompts, kl_tokens) holds KL(original || current) at every position,
    0 where the position is not counted; `counted` marks the positions up to
    and including the reference's end-of-sequence token. `non_finite` marks the
    counted positions where the current model's logits were NaN or infinite, so
    that its distribution is undefined; `kl` is +inf there, the worst damage.
    The optional tensors are filled by `measure(..., details=True)`: the
    log-probability that the current and the original model give the reference
    token, and whether the current model's most likely token is the reference
    token.
    """

    kl: Tensor
    counted: Tensor
    weights: Tensor
    targets: Tensor
    non_finite: Tensor | None = None
    current_target_log_probabilities: Tensor | None = None
    reference_target_log_probabilities: Tensor | None = None
    top1_agreement: Tensor | None = None

    @property
    def mean(self) -> float:
        """The (weighted) mean KL divergence over all counted positions: the score."""
        return masked_weighted_mean(self.kl, self.counted, self.weights)

    @property
    def position_means(self) -> list[float]:
        """The mean KL divergence at each position 1 .. kl_tokens (NaN where none counts)."""
        return masked_position_means(self.kl, self.counted)

    @property
    def first_token_mean(self) -> float:
        """The mean KL divergence of the first token alone: heretic's first-token KL."""
        return self.position_means[0]

    @property
    def position_counts(self) -> list[int]:
        """How many prompts count each position 1 .. kl_tokens (0 where every reference ended earlier)."""
        return [int(count) for count in self.counted.sum(dim=0)]

    @property
    def non_finite_count(self) -> int:
        """The number of counted positions where the current model's logits were not finite."""
        if self.non_finite is None:
            return 0
        return int((self.non_finite & self.counted).sum())
