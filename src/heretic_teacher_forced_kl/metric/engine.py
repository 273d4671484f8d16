# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The teacher-forced KL engine, independent of how heretic hosts it.

`build_reference` runs once, on the original model: it generates the reference
continuations and stores the original model's log-probabilities, computed by
the same teacher-forced forward pass that scoring uses, so that the unmodified
model scores exactly 0. `measure` then runs one forward pass per batch over
prompt + the first N - 1 reference tokens, computes logits only at the N scored
positions (`forward.py`), and compares the full next-token distributions on the
device that holds the logits, in chunks of bounded size (`divergence.py`). The
token tensors are built once and moved to the model's input device once; an
out-of-memory error splits the batch for good instead of failing the trial
(`memory.py`). Messages are plain text, passed to `log` (by default the
`logging` logger of this module).

An original model whose log-probabilities are not finite at a counted
position (logits that hold NaN or +inf) cannot be the reference: every
trial's KL divergence would be NaN. `build_reference` stops with an
`UnusableModelError` that names the first such prompt, before any trial.
"""

import logging
from collections.abc import Callable
from typing import Annotated, Any

import torch
from pydantic import Field, TypeAdapter, ValidationError
from torch import Tensor

from ..errors import UnusableModelError, UsageError
from .divergence import (
    BatchDivergence,
    batch_divergence,
    chunked_log_probabilities,
    position_weights,
)
from .forward import ScoredLogits
from .measurement import KLMeasurement
from .memory import (
    ReferenceStorage,
    empty_device_cache,
    plan_reference_storage,
    run_splitting_on_out_of_memory,
)
from .reference import (
    PromptModel,
    ReferenceBatch,
    build_reference_batch,
    context_window,
    input_device,
    learned_position_count,
    sequence_lengths,
)

logger = logging.getLogger(__name__)

#: The rule for the number of reference tokens compared per prompt: a whole
#: number of at least 1. The settings model (`settings.py`) declares its field
#: with it, and the engine checks its argument by it: one rule, one place.
KLTokens = Annotated[int, Field(ge=1, strict=True)]

#: The rule for the geometric weight of successive positions: in (0, 1].
PositionWeightDecay = Annotated[float, Field(gt=0.0, le=1.0)]

KL_TOKENS_RULE: TypeAdapter[int] = TypeAdapter(KLTokens)
POSITION_WEIGHT_DECAY_RULE: TypeAdapter[float] = TypeAdapter(PositionWeightDecay)


def checked_value(rule: TypeAdapter[Any], value: Any, name: str) -> Any:
    """`value` checked by `rule`, with a one-line `ValueError` that names `name`."""
    try:
        return rule.validate_python(value)
    except ValidationError as error:
        problem = str(error.errors()[0]["msg"]).rstrip(".")
        raise ValueError(f"{name}: {problem} (got {value!r}).") from None


#: The most characters of a prompt that an error message quotes.
MAXIMUM_QUOTED_PROMPT_LENGTH = 60


def describe_prompt(prompt: Any) -> str:
    """A prompt's user text (or the prompt itself) on one line, quoted and shortened."""
    text = " ".join(str(getattr(prompt, "user", prompt)).split())
    if len(text) > MAXIMUM_QUOTED_PROMPT_LENGTH:
        text = text[: MAXIMUM_QUOTED_PROMPT_LENGTH - 3] + "..."
    return repr(text)


def non_finite_reference_error(
    not_finite: Tensor, prompts: list[Any]
) -> UnusableModelError:
    """
    The error for the original model's non-finite log-probabilities: `not_finite`
    (prompts, kl_tokens) marks the counted positions where they are NaN or +inf.
    """
    bad_prompts = not_finite.any(dim=1)
    first = int(bad_prompts.nonzero()[0, 0])
    position = int(not_finite[first].nonzero()[0, 0])
    return UnusableModelError(
        "The original model's logits are NaN or infinite at "
        f"{int(bad_prompts.sum())} of {len(prompts)} KL prompts, first at prompt "
        f"{first + 1} ({describe_prompt(prompts[first])}), reference token "
        f"{position + 1}; it cannot serve as the reference for KL divergence: check "
        "its weights, or load it in another dtype (float16 overflows easily)."
    )


def beyond_position_table_error(
    positions: int, kl_tokens: int, prompts: list[Any]
) -> UsageError:
    """
    The error for prompts that a model with learned absolute positions cannot
    read: with the reference tokens they are longer than its position table.
    """
    longest = max(prompts, key=lambda prompt: len(str(getattr(prompt, "user", prompt))))
    return UsageError(
        f"A prompt of a batch of {len(prompts)} (the longest: {describe_prompt(longest)}) "
        f"with its {kl_tokens} reference tokens is longer than the {positions} "
        "positions this model has learned (absolute position embeddings, as in "
        "GPT-2), so the model cannot read it; shorten the prompts or lower kl_tokens."
    )


class TeacherForcedKLEngine:
    """
    Measures teacher-forced multi-token KL divergence against a stored reference.

    Construct it, call `build_reference` once with the original model, then call
    `measure` (or `score`) on every modified model.
    """

    def __init__(
        self,
        kl_tokens: int = 3,
        batch_size: int = 8,
        position_weight_decay: float = 1.0,
        reference_storage: ReferenceStorage = ReferenceStorage.AUTO,
        log: Callable[[str], None] | None = None,
    ) -> None:
        # The settings model's own rules, for callers that build the engine directly.
        kl_tokens = checked_value(KL_TOKENS_RULE, kl_tokens, "kl_tokens")
        position_weight_decay = checked_value(
            POSITION_WEIGHT_DECAY_RULE, position_weight_decay, "position_weight_decay"
        )
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        self.kl_tokens = kl_tokens
        self.batch_size = batch_size
        self.position_weight_decay = position_weight_decay
        self.reference_storage = ReferenceStorage(reference_storage)
        self.log = log if log is not None else logger.info
        self.scored_logits = ScoredLogits(kl_tokens, self.log)
        self.batches: list[ReferenceBatch] = []
        self.reference_log_probabilities: list[Tensor] = []
        self.reference_bytes = 0
        self.storage_device: torch.device | None = None
        # Whether the original model gives any token probability 0 somewhere;
        # only then does scoring need the pass that makes those tokens contribute 0.
        self.reference_has_zero_probabilities = False
        # The `counted` and `targets` matrices of all prompts on the CPU, built once.
        self.counted = torch.empty(0, kl_tokens, dtype=torch.bool)
        self.targets = torch.empty(0, kl_tokens, dtype=torch.long)

    @property
    def has_reference(self) -> bool:
        """Whether `build_reference` has run."""
        return bool(self.reference_log_probabilities)

    def build_reference(self, model: PromptModel, prompts: list[Any]) -> None:
        """
        Generates the reference continuations with the original `model` and stores
        its teacher-forced log-probabilities. Call it once, before any modification.
        """
        if not prompts:
            raise ValueError(
                "The prompt set is empty; teacher-forced KL needs at least one prompt."
            )

        self.batches = []
        self.reference_log_probabilities = []
        self.storage_device = None
        self.reference_has_zero_probabilities = False
        hf_model = model.model
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                batch_prompts = prompts[start : start + self.batch_size]
                try:
                    batch = build_reference_batch(model, batch_prompts, self.kl_tokens)
                except (IndexError, RuntimeError) as error:
                    positions = learned_position_count(hf_model)
                    if positions is None or "index" not in str(error).lower():
                        raise
                    self.batches = []
                    raise beyond_position_table_error(
                        positions, self.kl_tokens, batch_prompts
                    ) from None
                self.batches.append(batch)

            self._warn_beyond_context_window(hf_model, len(prompts))
            device = input_device(hf_model)
            results = self._run_batches(
                lambda index: self._reference_batch(
                    hf_model, index, device, len(prompts)
                )
            )

        # Splitting a batch keeps the order of the prompts, so these stay valid.
        not_finite = torch.cat([batch_not_finite for _, batch_not_finite in results])
        if bool(not_finite.any()):
            self.batches = []
            raise non_finite_reference_error(not_finite, prompts)
        self.reference_log_probabilities = [log_probs for log_probs, _ in results]
        self.counted = torch.cat([batch.counted.cpu() for batch in self.batches])
        self.targets = torch.cat([batch.targets.cpu() for batch in self.batches])

    def _warn_beyond_context_window(self, hf_model: Any, prompt_count: int) -> None:
        """
        Warns once when some prompts, with the reference tokens the pass reads, are
        longer than the model's context window. They are scored all the same:
        their last positions lie where the model was not trained, which heretic's
        own generation of longer responses from the same prompts meets too.
        """
        window = context_window(hf_model)
        if window is None:
            return
        lengths = torch.cat([sequence_lengths(batch).cpu() for batch in self.batches])
        beyond = int((lengths > window).sum())
        if beyond:
            self.log(
                f"Warning: {beyond} of {prompt_count} prompts are longer than the "
                f"model's context window of {window} tokens (max_position_embeddings) "
                f"together with the {self.kl_tokens - 1} reference tokens that the "
                f"teacher-forced pass reads (longest: {int(lengths.max())} tokens); "
                "their KL is measured at positions the model was not trained for. "
                "Shorten these prompts or lower kl_tokens for a reliable measure"
            )

    def _reference_batch(
        self, hf_model: Any, index: int, device: torch.device, prompt_count: int
    ) -> tuple[Tensor, Tensor]:
        """
        Computes batch `index`'s reference log-probabilities and stores them.
        Returns them with the mask (prompts, kl_tokens), on the CPU, of the
        counted positions where they are not finite.
        """
        batch = self._batch_on_device(index, device)
        log_probs = chunked_log_probabilities(self.scored_logits(hf_model, batch))
        # Reductions instead of element-wise tests, so that no temporary of the
        # batch's size is needed: the maximum of a row is NaN or +inf exactly
        # when the row holds NaN or +inf, and its minimum is -inf where a token
        # has probability 0.
        not_finite = ~torch.isfinite(log_probs.amax(dim=-1))
        not_finite &= batch.counted.to(not_finite.device)
        if bool(torch.isneginf(log_probs.amin(dim=-1)).any()):
            self.reference_has_zero_probabilities = True
        return self._stored_reference(log_probs, prompt_count), not_finite.cpu()

    def _stored_reference(self, log_probs: Tensor, prompt_count: int) -> Tensor:
        """Moves a batch's reference log-probabilities to where the reference is kept."""
        if self.storage_device is None:
            plan = plan_reference_storage(
                log_probs.device,
                prompt_count,
                self.kl_tokens,
                log_probs.shape[-1],
                self.reference_storage,
                log_probs.element_size(),
            )
            self.storage_device = plan.device
            self.reference_bytes = plan.reference_bytes
            self.log(plan.description)
        storage_device = self.storage_device
        assert storage_device is not None
        if storage_device == log_probs.device:
            return log_probs
        if storage_device.type == "cpu" and log_probs.device.type == "cuda":
            # One pinned copy, from which every trial streams its chunks asynchronously.
            pinned = torch.empty(
                log_probs.shape, dtype=log_probs.dtype, device="cpu", pin_memory=True
            )
            return pinned.copy_(log_probs)
        return log_probs.to(storage_device)

    def _run_batches(self, run: Callable[[int], Any]) -> list[Any]:
        """Runs every batch in order, splitting a batch that runs out of memory."""
        return run_splitting_on_out_of_memory(
            lambda: len(self.batches),
            run,
            lambda index: self.batches[index].size > 1,
            self._split_batch,
        )

    def _split_batch(self, index: int) -> None:
        """
        Splits batch `index` (and its reference, if stored) in two after an
        out-of-memory error, so that the next attempt needs about half the
        memory. The split is kept for every later trial.
        """
        batch = self.batches[index]
        empty_device_cache(batch.input_ids.device)
        first, second = batch.split()
        self.batches[index : index + 1] = [first, second]
        if index < len(self.reference_log_probabilities):
            reference = self.reference_log_probabilities[index]
            middle = first.size
            self.reference_log_probabilities[index : index + 1] = [
                reference[:middle],
                reference[middle:],
            ]
        self.log(
            f"Out of memory with a batch of {batch.size} prompts; "
            f"retrying as {first.size} + {second.size}"
        )

    def _batch_on_device(self, index: int, device: torch.device) -> ReferenceBatch:
        """
        Returns batch `index` with its token tensors on `device`. They are moved
        once and kept there, so no trial copies them again.
        """
        batch = self.batches[index]
        if batch.input_ids.device != device:
            batch = batch.to(device)
            self.batches[index] = batch
        return batch

    def measure(self, hf_model: Any, details: bool = False) -> KLMeasurement:
        """
        Measures KL(original || current) at every reference position of every prompt.

        `hf_model` is the current (possibly PEFT-wrapped, possibly sharded) Hugging
        Face model. With `details`, it also returns the log-probabilities of the
        reference tokens and the top-1 agreement, for reports.
        """
        if not self.has_reference:
            raise RuntimeError("build_reference must run before measure.")

        device = input_device(hf_model)
        with torch.inference_mode():
            parts: list[BatchDivergence] = self._run_batches(
                lambda index: self._measure_batch(hf_model, index, device, details)
            )

        # Copies of the matrices built once, so that no measurement can change another's.
        counted = self.counted.clone()
        # One transfer per result, after the last batch, so nothing waits in between.
        kl_matrix = torch.cat([part.kl for part in parts]).cpu()
        kl_matrix = kl_matrix.masked_fill(~counted, 0.0)
        non_finite = torch.cat([part.non_finite for part in parts]).cpu() & counted

        def concatenated(tensors: list[Tensor | None]) -> Tensor | None:
            present = [tensor for tensor in tensors if tensor is not None]
            return torch.cat(present).cpu() if details and present else None

        return KLMeasurement(
            kl=kl_matrix,
            counted=counted,
            weights=position_weights(self.kl_tokens, self.position_weight_decay),
            targets=self.targets.clone(),
            non_finite=non_finite,
            current_target_log_probabilities=concatenated(
                [part.current_target_log_probabilities for part in parts]
            ),
            reference_target_log_probabilities=concatenated(
                [part.reference_target_log_probabilities for part in parts]
            ),
            top1_agreement=concatenated([part.top1_agreement for part in parts]),
        )

    def _measure_batch(
        self, hf_model: Any, index: int, device: torch.device, details: bool
    ) -> BatchDivergence:
        """Runs batch `index` through `hf_model` and compares it with its reference."""
        batch = self._batch_on_device(index, device)
        logits = self.scored_logits(hf_model, batch)
        return batch_divergence(
            logits,
            self.reference_log_probabilities[index],
            targets=batch.targets if details else None,
            reference_has_zero_probabilities=self.reference_has_zero_probabilities,
        )

    def score(self, hf_model: Any) -> float:
        """The scalar that heretic optimizes: the mean KL over all counted positions."""
        return self.measure(hf_model).mean
