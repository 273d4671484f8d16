# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The mathematics of teacher-forced KL divergence, free of any model or host.

Every function here works on tensors that already live on the device that
holds the logits, so nothing is copied between devices. The exact functions
(`log_probabilities`, `kl_divergence_per_position`) define the quantity; the
chunked ones (`chunked_log_probabilities`, `batch_divergence`) compute the same
values in bounded memory, as the engine does.

A batch's scored logits have the shape (prompts, kl_tokens, vocabulary). The
plain formula `exp(reference) * (reference - current)` materializes three
temporaries of that full shape besides the current log-probabilities. The
chunked functions process the rows (prompt, position) in chunks of at most
`CHUNK_BYTES` of float32 vocabulary rows, and each chunk reuses its own
log-probability buffer for the difference, so that the extra memory of the KL
step stays below three chunks however large the batch is. Every value equals
what `kl_divergence_per_position` computes: the same element-wise operations in
the same order, summed over the same contiguous rows.

Non-finite numbers follow the definition of KL(reference || current) as the sum
over tokens of p log(p / q). A token to which the reference gives probability 0
(a log-probability of minus infinity) contributes 0, whatever the current model
gives it; the plain formula would give 0 * inf = NaN there. A token with p > 0
to which the current model gives probability 0 makes the divergence +inf. A
current distribution that is undefined (logits that hold NaN or +inf, whose
log-softmax is NaN) also scores +inf, the worst damage, and is marked in
`BatchDivergence.non_finite`: a broken model must never look undamaged, and
NaN compares false with every threshold.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: The most bytes of float32 vocabulary rows that one chunk holds. Big enough
#: that every kernel still saturates the device, small enough that a chunk's
#: temporaries are negligible next to the model.
CHUNK_BYTES = 32 * 2**20

#: Bytes per float32 value.
FLOAT32_BYTES = 4

#: The KL divergence of a current distribution that is undefined (NaN): the worst damage.
UNDEFINED_DIVERGENCE = float("inf")


def computation_dtype(logits_dtype: torch.dtype) -> torch.dtype:
    """
    The dtype in which log-probabilities and KL divergences are computed: float32,
    or float64 for float64 logits (a model loaded in float64, as the tests'
    comparisons with float64 computations use).
    """
    return torch.promote_types(logits_dtype, torch.float32)


def log_probabilities(logits: Tensor) -> Tensor:
    """
    Returns the log-softmax of `logits` over the last dimension, in float32 (in
    float64 for float64 logits).

    Models usually produce logits in bfloat16 or float16, whose resolution is far
    too coarse for differences between two nearly identical distributions.
    """
    return F.log_softmax(logits.to(computation_dtype(logits.dtype)), dim=-1)


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
    agrees exactly with heretic's first-token KL divergence. Tokens to which
    the reference gives probability 0 contribute 0, and a position whose
    current log-probabilities are NaN is +inf (see the module's description).
    """
    terms = F.kl_div(
        current_log_probabilities,
        reference_log_probabilities,
        reduction="none",
        log_target=True,
    )
    terms = terms.masked_fill(torch.isneginf(reference_log_probabilities), 0.0)
    return undefined_as_infinite(terms.sum(dim=-1))[0]


def undefined_as_infinite(kl: Tensor) -> tuple[Tensor, Tensor]:
    """
    Returns `kl` with NaN replaced by +inf, and the mask of the replaced entries.

    Once the reference's zero-probability tokens contribute 0, a NaN sum means
    that the current log-probabilities are NaN (the reference's are checked when
    it is built): the current model's logits hold NaN or +inf, and its
    distribution is undefined.
    """
    undefined = torch.isnan(kl)
    return kl.masked_fill(undefined, UNDEFINED_DIVERGENCE), undefined


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


@dataclass
class BatchDivergence:
    """
    The per-position results of one batch, on the device of the logits.

    `kl` has the shape (prompts, kl_tokens). The optional tensors of the same
    shape are filled when targets are given: the log-probability that the
    current and the original model give the target token, and whether the
    current model's most likely token is the target. `non_finite` marks the
    positions whose current log-probabilities are NaN (logits that hold NaN or
    +inf), where `kl` is +inf.
    """

    kl: Tensor
    non_finite: Tensor
    current_target_log_probabilities: Tensor | None = None
    reference_target_log_probabilities: Tensor | None = None
    top1_agreement: Tensor | None = None


def rows_per_chunk(vocabulary: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The number of float32 vocabulary rows that fit in one chunk (at least one)."""
    return max(1, chunk_bytes // (vocabulary * FLOAT32_BYTES))


def has_zero_probabilities(
    reference_log_probabilities: Tensor, chunk_bytes: int = CHUNK_BYTES
) -> bool:
    """
    Whether the reference gives any token probability 0 (a log-probability of -inf).

    Only then does `batch_divergence` need the extra pass that sets those
    tokens' terms to 0; the engine asks once, when it builds the reference.
    The rows are checked chunk by chunk, so the check needs no memory of the
    reference's size.
    """
    vocabulary = reference_log_probabilities.shape[-1]
    rows = reference_log_probabilities.reshape(-1, vocabulary)
    step = rows_per_chunk(vocabulary, chunk_bytes)
    return any(
        bool(torch.isneginf(rows[start : start + step]).any())
        for start in range(0, rows.shape[0], step)
    )


def chunked_log_probabilities(logits: Tensor, chunk_bytes: int = CHUNK_BYTES) -> Tensor:
    """
    Returns `divergence.log_probabilities(logits)`, computed chunk by chunk.

    Only the float32 result and one chunk's upcast copy of low-precision logits
    are alive at once, instead of a full upcast copy next to the result.
    """
    vocabulary = logits.shape[-1]
    rows = logits.reshape(-1, vocabulary)
    result = torch.empty(
        rows.shape, dtype=computation_dtype(logits.dtype), device=logits.device
    )
    step = rows_per_chunk(vocabulary, chunk_bytes)
    for start in range(0, rows.shape[0], step):
        result[start : start + step] = log_probabilities(rows[start : start + step])
    return result.reshape(logits.shape)


def batch_divergence(
    logits: Tensor,
    reference_log_probabilities: Tensor,
    targets: Tensor | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    reference_has_zero_probabilities: bool | None = None,
) -> BatchDivergence:
    """
    Returns KL(reference || current) at every scored position of one batch.

    `logits` (prompts, kl_tokens, vocabulary) are the current model's scored
    logits, in any floating dtype. `reference_log_probabilities` has the same
    shape and may live on another device (pinned CPU memory): each chunk is
    copied to the logits' device when it is needed. With `targets`
    (prompts, kl_tokens), the target-token details are computed as well.

    `reference_has_zero_probabilities` says whether the reference holds any
    log-probability of -inf (`has_zero_probabilities`); only then does each
    chunk take one more pass to make those tokens contribute 0. None asks the
    reference itself, which costs a pass over it; the engine knows the answer
    from the reference's construction.
    """
    if reference_has_zero_probabilities is None:
        reference_has_zero_probabilities = has_zero_probabilities(
            reference_log_probabilities, chunk_bytes
        )
    device = logits.device
    vocabulary = logits.shape[-1]
    logit_rows = logits.reshape(-1, vocabulary)
    reference_rows = reference_log_probabilities.reshape(-1, vocabulary)
    row_count = logit_rows.shape[0]
    target_rows = targets.reshape(-1).to(device) if targets is not None else None

    dtype = torch.promote_types(
        computation_dtype(logits.dtype), reference_log_probabilities.dtype
    )
    kl = torch.empty(row_count, dtype=dtype, device=device)
    if target_rows is not None:
        current_target = torch.empty(row_count, dtype=dtype, device=device)
        reference_target = torch.empty(row_count, dtype=dtype, device=device)
        agreement = torch.empty(row_count, dtype=torch.bool, device=device)

    step = rows_per_chunk(vocabulary, chunk_bytes)
    for start in range(0, row_count, step):
        end = min(start + step, row_count)
        current = log_probabilities(logit_rows[start:end])
        reference = reference_rows[start:end].to(device, non_blocking=True)
        if target_rows is not None:
            chunk_targets = target_rows[start:end].unsqueeze(-1)
            current_target[start:end] = current.gather(-1, chunk_targets).squeeze(-1)
            reference_target[start:end] = reference.gather(-1, chunk_targets).squeeze(
                -1
            )
            agreement[start:end] = current.argmax(dim=-1) == chunk_targets.squeeze(-1)
        # exp(reference) * (reference - current), as torch.kl_div computes it with
        # log_target=True, with the difference written over `current`.
        difference = torch.sub(reference, current, out=current)
        difference.mul_(reference.exp())
        if reference_has_zero_probabilities:
            difference.masked_fill_(torch.isneginf(reference), 0.0)
        kl[start:end] = difference.sum(dim=-1)
        del current, reference, difference

    shape = logits.shape[:-1]
    kl, non_finite = undefined_as_infinite(kl)
    if target_rows is None:
        return BatchDivergence(
            kl=kl.reshape(shape), non_finite=non_finite.reshape(shape)
        )
    # The most likely token of an undefined distribution is no token at all.
    agreement &= ~non_finite
    return BatchDivergence(
        kl=kl.reshape(shape),
        non_finite=non_finite.reshape(shape),
        current_target_log_probabilities=current_target.reshape(shape),
        reference_target_log_probabilities=reference_target.reshape(shape),
        top1_agreement=agreement.reshape(shape),
    )
