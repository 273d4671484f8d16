# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Building the reference: the original model's own greedy continuations.

Once, before any trial, the original model generates `kl_tokens` tokens for
every prompt through heretic's own prompt path (chat template, system prompt,
response prefix, left padding). The token tensors that every later
teacher-forced pass needs are built here, once, so nothing is re-tokenized per
trial.
"""

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from .divergence import counted_positions


class PromptModel(Protocol):
    """
    The part of `heretic.model.Model` that the reference needs.

    Both heretic-llm 1.4.0 and heretic master provide it: `model` is the
    (PEFT-wrapped) Hugging Face model, `tokenizer` pads on the left, and
    `generate` applies the chat template, the system prompt and the response
    prefix before it calls the Hugging Face `generate` with greedy decoding.
    """

    model: Any
    tokenizer: Any

    def generate(self, prompts: list[Any], **kwargs: Any) -> tuple[Any, Any]: ...


@dataclass
class ReferenceBatch:
    """
    The token tensors of one batch of prompts, built once and reused by every trial.

    `input_ids`, `attention_mask` and `position_ids` have the shape
    (prompts, prompt length + kl_tokens - 1): each left-padded prompt followed by
    the first kl_tokens - 1 reference tokens. `targets` (prompts, kl_tokens) holds
    the reference tokens whose prediction is scored at the last kl_tokens
    positions, and `counted` marks the positions up to and including the
    reference's end-of-sequence token.
    """

    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    targets: Tensor
    counted: Tensor

    @property
    def size(self) -> int:
        """The number of prompts in this batch."""
        return int(self.input_ids.shape[0])

    def split(self) -> tuple["ReferenceBatch", "ReferenceBatch"]:
        """Splits this batch into two halves that keep the same padded layout."""
        middle = self.size // 2
        first = ReferenceBatch(
            input_ids=self.input_ids[:middle],
            attention_mask=self.attention_mask[:middle],
            position_ids=self.position_ids[:middle],
            targets=self.targets[:middle],
            counted=self.counted[:middle],
        )
        second = ReferenceBatch(
            input_ids=self.input_ids[middle:],
            attention_mask=self.attention_mask[middle:],
            position_ids=self.position_ids[middle:],
            targets=self.targets[middle:],
            counted=self.counted[middle:],
        )
        return first, second

    def to(self, device: torch.device) -> "ReferenceBatch":
        """Returns this batch with its tensors on `device` (a no-op where they already are)."""
        return ReferenceBatch(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            position_ids=self.position_ids.to(device),
            targets=self.targets.to(device),
            counted=self.counted.to(device),
        )


def position_ids_from_attention_mask(attention_mask: Tensor) -> Tensor:
    """
    Returns position ids that start at 0 at each row's first real token.

    This is how Hugging Face `generate` numbers left-padded rows, so a single
    teacher-forced forward pass sees every token at the position it had
    during generation.
    """
    position_ids = attention_mask.long().cumsum(dim=-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    return position_ids


def end_of_sequence_token_ids(model: PromptModel) -> Tensor:
    """
    Returns every token id that ends a generation: those of the generation
    config and the tokenizer's end-of-sequence token.
    """
    token_ids: set[int] = set()
    generation_config = getattr(model.model, "generation_config", None)
    configured = getattr(generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        token_ids.add(configured)
    elif configured is not None:
        token_ids.update(int(token_id) for token_id in configured)
    if model.tokenizer.eos_token_id is not None:
        token_ids.add(int(model.tokenizer.eos_token_id))
    return torch.tensor(sorted(token_ids), dtype=torch.long)


def input_device(hf_model: Any) -> torch.device:
    """
    Returns the device that holds the input embeddings.

    When accelerate shards a model over several devices, the inputs must go where
    the embedding layer is, which need not be `model.device`.
    """
    embeddings = hf_model.get_input_embeddings()
    return embeddings.weight.device


def context_window(hf_model: Any) -> int | None:
    """
    The number of positions the model was trained for (`max_position_embeddings`
    of its configuration, or of its text model's for a multimodal model), or None
    where the configuration does not say.
    """
    config = getattr(hf_model, "config", None)
    configs = [config]
    get_text_config = getattr(config, "get_text_config", None)
    if callable(get_text_config):
        configs.append(get_text_config())
    for candidate in configs:
        value = getattr(candidate, "max_position_embeddings", None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


#: The names that Hugging Face models give a table of learned absolute positions
#: (GPT-2 and GPT-Neo `wpe`, OPT `embed_positions`, BERT-style `position_embeddings`).
POSITION_TABLE_NAMES = ("wpe", "embed_positions", "position_embeddings")


def learned_position_count(hf_model: Any) -> int | None:
    """
    The number of positions of the model's learned absolute position table, or
    None for a model without one (rotary or ALiBi positions). Unlike rotary
    positions, such a table has no entry beyond its last row: a longer sequence
    cannot be run at all.
    """
    for name, module in hf_model.named_modules():
        if isinstance(module, torch.nn.Embedding) and (
            name.rsplit(".", 1)[-1] in POSITION_TABLE_NAMES
        ):
            return context_window(hf_model) or int(module.num_embeddings)
    return None


def sequence_lengths(batch: ReferenceBatch) -> Tensor:
    """
    The number of tokens that the teacher-forced pass reads for each prompt of
    `batch`: the prompt and the first kl_tokens - 1 reference tokens.
    """
    return batch.attention_mask.sum(dim=1)


def build_reference_batch(
    model: PromptModel, prompts: list[Any], kl_tokens: int
) -> ReferenceBatch:
    """
    Greedily generates `kl_tokens` tokens for `prompts` with the original model,
    through heretic's prompt path, and builds the teacher-forced token tensors.
    """
    inputs, outputs = model.generate(prompts, max_new_tokens=kl_tokens)
    if not isinstance(outputs, Tensor):
        outputs = outputs.sequences
    prompt_ids = inputs["input_ids"]
    prompt_mask = inputs["attention_mask"]
    prompt_length = prompt_ids.shape[1]

    continuation = outputs[:, prompt_length:].to(prompt_ids.device)
    generated = continuation.shape[1]
    if generated < kl_tokens:
        # Every row ended before kl_tokens tokens; pad the rest, which is never counted.
        pad_token_id = model.tokenizer.pad_token_id
        padding = torch.full(
            (continuation.shape[0], kl_tokens - generated),
            pad_token_id,
            dtype=continuation.dtype,
            device=continuation.device,
        )
        continuation = torch.cat([continuation, padding], dim=1)

    counted = counted_positions(continuation, end_of_sequence_token_ids(model))

    input_ids = torch.cat([prompt_ids, continuation[:, : kl_tokens - 1]], dim=1)
    attention_mask = torch.cat(
        [
            prompt_mask,
            torch.ones_like(continuation[:, : kl_tokens - 1], dtype=prompt_mask.dtype),
        ],
        dim=1,
    )
    position_ids = position_ids_from_attention_mask(attention_mask)

    return ReferenceBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        targets=continuation,
        counted=counted,
    )
