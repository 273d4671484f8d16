# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The mathematics of teacher-forced KL divergence, free of any model or host.

Every function here works on tensors that already live on the device that
holds the logits, so nothing is copied between devices.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def log_probabilities(logits: Tensor) -> Tensor:
    """
    Returns the log-softmax of `logits` over the last dimension, in float32.

    Models usually produce logits in bfloat16 or float16, whose resolution is far
    too coarse for differences between two nearly identical distributions.
    """
    return F.log_softmax(logits.float(), dim=-1)


def kl_divergence_per_position(
    reference_log_probabilities: Tensor,
    current_log_probabilities: Tensor,
) -> Tensor:
    """
    Returns KL(reference || current) over the full vocabulary for every position.

    Both arguments have the shape (prompts, positions, vocabulary) and hold
    log-probabilities; the result has the shape (prompts, positions). This is
    the same quantity that `torch.nn.functional.kl_div` computes with
    `log_target=True`, summed over the vocabulary, so that the first position
    agrees exactly with heretic's first-token KL divergence.
    """
    return F.kl_div(
        current_log_probabilities,
        reference_log_probabilities,
        reduction="none",
        log_target=True,
    ).sum(dim=-1)


def position_weights(
    positions: int,
    decay: float,
    device: torch.device | None = None,
) -> Tensor:
    """
    Returns the geometric weights `decay ** k` for positions k = 0 .. positions - 1.

    A decay of 1 weights every position equally.
    """
    exponents = torch.arange(positions, dtype=torch.float64, device=device)
    return torch.pow(torch.tensor(decay, dtype=torch.float64, device=device), exponents)


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
    mask = counted.to(values.device, torch.float64) * weight_matrix
    total_weight = mask.sum()
    if total_weight.item() == 0:
        raise ValueError(
            "No position is counted, so the mean KL divergence is undefined."
        )
    return float((values.double() * mask).sum() / total_weight)


def masked_position_means(values: Tensor, counted: Tensor) -> list[float]:
    """
    Returns, for every position, the mean of `values` over the prompts that count it.

    Positions that no prompt counts (every reference ended earlier) are NaN.
    """
    mask = counted.to(values.device, torch.float64)
    totals = (values.double() * mask).sum(dim=0)
    counts = mask.sum(dim=0)
    means = torch.where(counts > 0, totals / counts.clamp(min=1), torch.nan)
    return [float(mean) for mean in means.cpu()]


def counted_positions(
    continuation: Tensor,
    end_of_sequence_token_ids: Tensor,
) -> Tensor:
    """
    Returns which continuation positions count towards the KL divergence.

    `continuation` has the shape (prompts, positions). A position counts up to and
    including the first end-of-sequence token; every position after it is masked,
    because the reference text has already ended there.
    """
    is_end = torch.isin(continuation, end_of_sequence_token_ids.to(continuation.device))
    # The number of end-of-sequence tokens strictly before each position.
    ends_before = torch.cumsum(is_end.long(), dim=-1) - is_end.long()
    return ends_before == 0
