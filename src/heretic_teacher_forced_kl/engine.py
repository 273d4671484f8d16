# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The teacher-forced KL engine, independent of how heretic hosts it.

`build_reference` runs once, on the original model: it generates the reference
continuations and stores the original model's log-probabilities, computed by
the same teacher-forced forward pass that scoring uses, so that the unmodified
model scores exactly 0. `measure` then runs one forward pass per batch over
prompt + the first N - 1 reference tokens, computes logits only at the N scored
positions, and compares the full next-token distributions on the device that
holds the logits, in chunks of bounded size (`chunked_divergence`). The token
tensors are built once and moved to the model's input device once; an
out-of-memory error splits the batch for good instead of failing the trial.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from .chunked_divergence import (
    BatchDivergence,
    batch_divergence,
    chunked_log_probabilities,
)
from .console import print as console_print
from .divergence import masked_position_means, masked_weighted_mean, position_weights
from .reference import PromptModel, ReferenceBatch, build_reference_batch, input_device
from .settings import ReferenceStorage, TeacherForcedKLSettings

#: The result of one batch for `TeacherForcedKLEngine._run_batches`.
Result = TypeVar("Result")

#: Bytes per stored reference log-probability (float32).
BYTES_PER_LOG_PROBABILITY = 4

#: In "auto" storage mode, the reference stays on the device when it takes at most
#: this share of the device's free memory.
DEVICE_STORAGE_SHARE = 0.25


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` reports an exhausted device or host allocator."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in message or "can't allocate memory" in message
    )


def empty_device_cache(device: torch.device) -> None:
    """Returns cached, unused device memory to the allocator after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "xpu" and hasattr(torch, "xpu"):
        torch.xpu.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def device_free_bytes(device: torch.device) -> int | None:
    """The free memory of an accelerator, or None where it cannot be queried."""
    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(device)
        return int(free_bytes)
    xpu = getattr(torch, "xpu", None)
    if device.type == "xpu" and hasattr(xpu, "mem_get_info"):
        free_bytes, _ = xpu.mem_get_info(device)
        return int(free_bytes)
    return None


def storage_device_for(
    logits_device: torch.device,
    reference_bytes: int,
    reference_storage: ReferenceStorage,
) -> torch.device:
    """
    Returns where the reference log-probabilities live: on the device of the
    logits when they fit in `DEVICE_STORAGE_SHARE` of its free memory (or
    `reference_storage` is "device"), otherwise in CPU memory, from which each
    trial streams them to the device batch by batch.
    """
    cpu = torch.device("cpu")
    if logits_device.type == "cpu" or reference_storage == ReferenceStorage.CPU:
        return cpu
    if reference_storage == ReferenceStorage.DEVICE:
        return logits_device
    free_bytes = device_free_bytes(logits_device)
    if free_bytes is None or reference_bytes <= DEVICE_STORAGE_SHARE * free_bytes:
        return logits_device
    return cpu


@dataclass
class KLMeasurement:
    """
    The KL divergence of one model against the reference, per prompt and position.

    `kl` (prompts, kl_tokens) holds KL(original || current) at every position,
    0 where the position is not counted; `counted` marks the positions up to
    and including the reference's end-of-sequence token. The optional tensors
    are filled by `measure(..., details=True)`: the log-probability that the
    current and the original model give the reference token, and whether the
    current model's most likely token is the reference token.
    """

    kl: Tensor
    counted: Tensor
    weights: Tensor
    targets: Tensor
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
        if (
            isinstance(kl_tokens, bool)
            or not isinstance(kl_tokens, int)
            or kl_tokens < 1
        ):
            raise ValueError(f"kl_tokens must be an integer >= 1, got {kl_tokens!r}.")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        if not 0 < position_weight_decay <= 1:
            raise ValueError(
                f"position_weight_decay must be in (0, 1], got {position_weight_decay!r}."
            )
        self.kl_tokens = kl_tokens
        self.batch_size = batch_size
        self.position_weight_decay = position_weight_decay
        self.reference_storage = ReferenceStorage(reference_storage)
        self.log = log if log is not None else console_print
        self.batches: list[ReferenceBatch] = []
        self.reference_log_probabilities: list[Tensor] = []
        self.reference_bytes = 0
        self.storage_device: torch.device | None = None
        self._supports_logits_to_keep = True
        self._supports_scored_positions = True
        self._scored_positions_cache: dict[tuple[int, str], Tensor] = {}
        # The `counted` and `targets` matrices of all prompts on the CPU, built once.
        self._counted: Tensor | None = None
        self._targets: Tensor | None = None

    @classmethod
    def from_settings(
        cls,
        settings: TeacherForcedKLSettings,
        host_batch_size: int,
        log: Callable[[str], None] | None = None,
    ) -> "TeacherForcedKLEngine":
        """Builds an engine from the scorer's settings and the host's batch size."""
        batch_size = settings.batch_size or host_batch_size
        return cls(
            kl_tokens=settings.kl_tokens,
            batch_size=max(int(batch_size), 1),
            position_weight_decay=settings.position_weight_decay,
            reference_storage=settings.reference_storage,
            log=log,
        )

    @property
    def prompt_count(self) -> int:
        """The number of prompts in the reference."""
        return sum(batch.size for batch in self.batches)

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
        self._counted = None
        self._targets = None
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                self.batches.append(
                    build_reference_batch(
                        model, prompts[start : start + self.batch_size], self.kl_tokens
                    )
                )

            hf_model = model.model
            device = input_device(hf_model)
            self.reference_log_probabilities = self._run_batches(
                lambda index: self._reference_batch(
                    hf_model, index, device, len(prompts)
                )
            )

        # Splitting a batch keeps the order of the prompts, so these stay valid.
        self._counted = torch.cat([batch.counted.cpu() for batch in self.batches])
        self._targets = torch.cat([batch.targets.cpu() for batch in self.batches])

    def _reference_batch(
        self, hf_model: Any, index: int, device: torch.device, prompt_count: int
    ) -> Tensor:
        """Computes batch `index`'s reference log-probabilities and stores them."""
        log_probs = chunked_log_probabilities(
            self._logits(hf_model, self._batch_on_device(index, device))
        )
        if self.storage_device is None:
            self._choose_storage(log_probs, prompt_count)
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

    def _choose_storage(self, log_probs: Tensor, prompt_count: int) -> None:
        """Decides where the reference log-probabilities live, and reports their size."""
        vocabulary = log_probs.shape[-1]
        self.reference_bytes = (
            prompt_count * self.kl_tokens * vocabulary * BYTES_PER_LOG_PROBABILITY
        )
        device = log_probs.device
        self.storage_device = storage_device_for(
            device, self.reference_bytes, self.reference_storage
        )
        if self.storage_device.type != "cpu":
            where = f"on {self.storage_device}"
        elif device.type == "cuda":
            where = "in pinned CPU memory, streamed to the device per batch"
        else:
            where = "in CPU memory"
        self.log(
            f"* Reference log-probabilities: [bold]{prompt_count}[/] prompts x "
            f"[bold]{self.kl_tokens}[/] tokens x [bold]{vocabulary}[/] vocabulary x 4 bytes = "
            f"[bold]{self.reference_bytes / 2**20:.1f} MiB[/], kept {where}"
        )

    def _run_batches(self, run: Callable[[int], Result]) -> list[Result]:
        """
        Calls `run` with the index of every batch in order and returns the results.
        When a batch runs out of memory, it is split in two (for good) and the
        first half is retried; any other error, or one with a single prompt, is
        raised.
        """
        results: list[Result] = []
        index = 0
        while index < len(self.batches):
            try:
                results.append(run(index))
                index += 1
                continue
            except Exception as error:
                if not self._can_split_after(error, index):
                    raise
            # The handler has ended, so the failed attempt's tensors are released.
            self._split_batch(index)
        return results

    def _can_split_after(self, error: BaseException, index: int) -> bool:
        """Whether `error` ran out of memory and splitting batch `index` may avoid it."""
        return is_out_of_memory(error) and self.batches[index].size > 1

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
            f"* [yellow]Out of memory with a batch of {batch.size} prompts; "
            f"retrying as {first.size} + {second.size}[/]"
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

    def _logits(self, hf_model: Any, batch: ReferenceBatch) -> Tensor:
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
        if self._supports_scored_positions:
            # The scored positions as a tensor select a contiguous copy of the last
            # hidden states; `logits_to_keep=kl_tokens` selects a strided view,
            # which the CPU output layer multiplies about twice as slowly. The
            # logits are the same.
            try:
                logits = hf_model(
                    **arguments, logits_to_keep=self._scored_positions(batch)
                ).logits
            except (TypeError, IndexError, RuntimeError, ValueError) as error:
                if is_out_of_memory(error):
                    raise
                logits = None
            if logits is not None and logits.shape[1] == self.kl_tokens:
                return logits
            # This model's code takes only a count in `logits_to_keep`.
            self._supports_scored_positions = False
        if self._supports_logits_to_keep:
            try:
                outputs = hf_model(**arguments, logits_to_keep=self.kl_tokens)
            except TypeError as error:
                if "logits_to_keep" not in str(error):
                    raise
                # Models with custom code may predate `logits_to_keep`; they then
                # compute logits at every position, which costs memory but is correct.
                self._supports_logits_to_keep = False
                self.log(
                    "* [yellow]This model does not support logits_to_keep; "
                    "computing logits at every position[/]"
                )
                outputs = hf_model(**arguments)
        else:
            outputs = hf_model(**arguments)
        return outputs.logits[:, -self.kl_tokens :, :]

    def _scored_positions(self, batch: ReferenceBatch) -> Tensor:
        """The indices of the last kl_tokens positions of `batch`, on its device."""
        length = int(batch.input_ids.shape[1])
        device = batch.input_ids.device
        key = (length, str(device))
        positions = self._scored_positions_cache.get(key)
        if positions is None:
            positions = torch.arange(length - self.kl_tokens, length, device=device)
            self._scored_positions_cache[key] = positions
        return positions

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
            parts = self._run_batches(
                lambda index: self._measure_batch(hf_model, index, device, details)
            )

        counted, targets = self._token_matrices()
        # One transfer per result, after the last batch, so nothing waits in between.
        kl_matrix = torch.cat([part.kl for part in parts]).cpu()
        kl_matrix = kl_matrix.masked_fill(~counted, 0.0)

        def concatenated(tensors: list[Tensor | None]) -> Tensor | None:
            present = [tensor for tensor in tensors if tensor is not None]
            return torch.cat(present).cpu() if details and present else None

        return KLMeasurement(
            kl=kl_matrix,
            counted=counted,
            weights=position_weights(self.kl_tokens, self.position_weight_decay),
            targets=targets,
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
        logits = self._logits(hf_model, batch)
        return batch_divergence(
            logits,
            self.reference_log_probabilities[index],
            targets=batch.targets if details else None,
        )

    def _token_matrices(self) -> tuple[Tensor, Tensor]:
        """
        The `counted` and `targets` matrices of all prompts, on the CPU: copies
        of the ones built once, so that no measurement can change another's.
        """
        if self._counted is None or self._targets is None:
            self._counted = torch.cat([batch.counted.cpu() for batch in self.batches])
            self._targets = torch.cat([batch.targets.cpu() for batch in self.batches])
        return self._counted.clone(), self._targets.clone()

    def score(self, hf_model: Any) -> float:
        """The scalar that heretic optimizes: the mean KL over all counted positions."""
        return self.measure(hf_model).mean
