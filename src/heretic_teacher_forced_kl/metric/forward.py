# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The teacher-forced forward pass, with logits only at the scored positions.

Hugging Face models take `logits_to_keep`, either as a count (the last N
positions) or as a tensor of position indices. The indices are preferred: they
select a contiguous copy of the last hidden states, which the CPU output layer
multiplies about twice as fast as the strided view that a count selects; the
logits are the same. Models whose code takes only a count, or predates
`logits_to_keep` entirely, are detected on the first pass and served by the
next best form for the rest of the engine's life.
"""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .memory import is_out_of_memory
from .reference import ReferenceBatch


class ScoredLogits:
    """Runs teacher-forced passes that return logits at the last `kl_tokens` positions."""

    def __init__(self, kl_tokens: int, log: Callable[[str], None]) -> None:
        self.kl_tokens = kl_tokens
        self.log = log
        self.accepts_position_indices = True
        self.accepts_logits_to_keep = True
        self.position_indices: dict[tuple[int, str], Tensor] = {}

    def __call__(self, hf_model: Any, batch: ReferenceBatch) -> Tensor:
        """
        Runs one teacher-forced forward pass and returns the logits at the
        kl_tokens scored positions only, with the shape (prompts, kl_tokens, vocabulary).
        The batch's tensors must already be on the model's input device.
        """
        arguments: dict[str, Any] = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "position_ids": batch.position_ids,
            "use_cache": False,
        }
        if self.accepts_position_indices:
            try:
                logits = hf_model(
                    **arguments, logits_to_keep=self.scored_positions(batch)
                ).logits
            except (TypeError, IndexError, RuntimeError, ValueError) as error:
                if is_out_of_memory(error):
                    raise
                logits = None
            if logits is not None and logits.shape[1] == self.kl_tokens:
                return logits
            # This model's code takes only a count in `logits_to_keep`.
            self.accepts_position_indices = False
        if self.accepts_logits_to_keep:
            try:
                outputs = hf_model(**arguments, logits_to_keep=self.kl_tokens)
            except TypeError as error:
                if "logits_to_keep" not in str(error):
                    raise
                # Models with custom code may predate `logits_to_keep`; they then
                # compute logits at every position, which costs memory but is correct.
                self.accepts_logits_to_keep = False
                self.log(
                    "This model does not support logits_to_keep; "
                    "computing logits at every position"
                )
                outputs = hf_model(**arguments)
        else:
            outputs = hf_model(**arguments)
        return outputs.logits[:, -self.kl_tokens :, :]

    def scored_positions(self, batch: ReferenceBatch) -> Tensor:
        """The indices of the last kl_tokens positions of `batch`, on its device."""
        length = int(batch.input_ids.shape[1])
        device = batch.input_ids.device
        key = (length, str(device))
        positions = self.position_indices.get(key)
        if positions is None:
            positions = torch.arange(length - self.kl_tokens, length, device=device)
            self.position_indices[key] = positions
        return positions
