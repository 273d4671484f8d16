# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
One batch's log-probabilities and KL divergence, computed in bounded memory.

A batch's scored logits have the shape (prompts, kl_tokens, vocabulary). The
plain formula `exp(reference) * (reference - current)` materializes three
temporaries of that full shape besides the current log-probabilities. Here the
rows (prompt, position) are processed in chunks of at most `CHUNK_BYTES` of
float32 vocabulary rows, and each chunk reuses its own log-probability buffer
for the difference, so that the extra memory of the KL step stays below
three chunks however large the batch is. Every value equals what
`divergence.kl_divergence_per_position` computes: the same element-wise
operations in the same order, summed over the same contiguous rows.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from .divergence import log_probabilities

#: The most bytes of float32 vocabulary rows that one chunk holds. Big enough
#: that every kernel still saturates the device, small enough that a chunk's
#: temporaries are negligible next to the model.
CHUNK_BYTES = 32 * 2**20

#: Bytes per float32 value.
FLOAT32_BYTES = 4


@dataclass
class BatchDivergence:
    """
    The per-position results of one batch, on the device of the logits.

    `kl` has the shape (prompts, kl_tokens). The optional tensors of the same
    shape are filled when targets are given: the log-probability that the
    current and the original model give the target token, and whether the
    current model's most likely token is the target.
    """

    kl: Tensor
    current_target_log_probabilities: Tensor | None = None
    reference_target_log_probabilities: Tensor | None = None
    top1_agreement: Tensor | None = None


def rows_per_chunk(vocabulary: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The number of float32 vocabulary rows that fit in one chunk (at least one)."""
    return max(1, chunk_bytes // (vocabulary * FLOAT32_BYTES))


def chunked_log_probabilities(logits: Tensor, chunk_bytes: int = CHUNK_BYTES) -> Tensor:
    """
    Returns `divergence.log_probabilities(logits)`, computed chunk by chunk.

    Only the float32 result and one chunk's upcast copy of low-precision logits
    are alive at once, instead of a full upcast copy next to the result.
    """
    vocabulary = logits.shape[-1]
    rows = logits.reshape(-1, vocabulary)
    result = torch.empty(rows.shape, dtype=torch.float32, device=logits.device)
    step = rows_per_chunk(vocabulary, chunk_bytes)
    for start in range(0, rows.shape[0], step):
        result[start : start + step] = log_probabilities(rows[start : start + step])
    return result.reshape(logits.shape)


def batch_divergence(
    logits: Tensor,
    reference_log_probabilities: Tensor,
    targets: Tensor | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> BatchDivergence:
    """
    Returns KL(reference || current) at every scored position of one batch.

    `logits` (prompts, kl_tokens, vocabulary) are the current model's scored
    logits, in any floating dtype. `reference_log_probabilities` has the same
    shape and may live on another device (pinned CPU memory): each chunk is
    copied to the logits' device when it is needed. With `targets`
    (prompts, kl_tokens), the target-token details are computed as well.
    """
    device = logits.device
    vocabulary = logits.shape[-1]
    logit_rows = logits.reshape(-1, vocabulary)
    reference_rows = reference_log_probabilities.reshape(-1, vocabulary)
    row_count = logit_rows.shape[0]
    target_rows = targets.reshape(-1).to(device) if targets is not None else None

    kl = torch.empty(row_count, dtype=torch.float32, device=device)
    if target_rows is not None:
        current_target = torch.empty(row_count, dtype=torch.float32, device=device)
        reference_target = torch.empty(row_count, dtype=torch.float32, device=device)
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
        kl[start:end] = difference.sum(dim=-1)
        del current, reference, difference

    shape = logits.shape[:-1]
    if target_rows is None:
        return BatchDivergence(kl=kl.reshape(shape))
    return BatchDivergence(
        kl=kl.reshape(shape),
        current_target_log_probabilities=current_target.reshape(shape),
        reference_target_log_probabilities=reference_target.reshape(shape),
        top1_agreement=agreement.reshape(shape),
    )
