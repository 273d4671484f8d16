# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Memory: out-of-memory detection, device memory, where the reference lives, and
the one loop that splits a batch in two when it runs out of memory.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import torch

#: The result of one batch for `run_splitting_on_out_of_memory`.
Result = TypeVar("Result")

#: Bytes per stored reference log-probability (float32).
BYTES_PER_LOG_PROBABILITY = 4

#: In "auto" storage mode, the reference stays on the device when it takes at most
#: this share of the device's free memory.
DEVICE_STORAGE_SHARE = 0.25


class ReferenceStorage(str, Enum):
    """Where the reference log-probabilities are kept between trials."""

    AUTO = "auto"
    DEVICE = "device"
    CPU = "cpu"


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


@dataclass(frozen=True)
class StoragePlan:
    """Where the reference log-probabilities live, their size, and a line that says so."""

    device: torch.device
    reference_bytes: int
    description: str


def plan_reference_storage(
    logits_device: torch.device,
    prompt_count: int,
    kl_tokens: int,
    vocabulary: int,
    reference_storage: ReferenceStorage,
    bytes_per_value: int = BYTES_PER_LOG_PROBABILITY,
) -> StoragePlan:
    """
    Decides where the reference log-probabilities of `prompt_count` prompts live
    (`bytes_per_value` each: 4 in float32, 8 in float64), and describes the
    decision in one line of plain text.
    """
    reference_bytes = prompt_count * kl_tokens * vocabulary * bytes_per_value
    device = storage_device_for(logits_device, reference_bytes, reference_storage)
    if device.type != "cpu":
        where = f"on {device}"
    elif logits_device.type == "cuda":
        where = "in pinned CPU memory, streamed to the device per batch"
    else:
        where = "in CPU memory"
    description = (
        f"Reference log-probabilities: {prompt_count} prompts x {kl_tokens} tokens x "
        f"{vocabulary} vocabulary x {bytes_per_value} bytes = "
        f"{reference_bytes / 2**20:.1f} MiB, "
        f"kept {where}"
    )
    return StoragePlan(device, reference_bytes, description)


def run_splitting_on_out_of_memory(
    batch_count: Callable[[], int],
    run: Callable[[int], Result],
    can_split: Callable[[int], bool],
    split: Callable[[int], None],
) -> list[Result]:
    """
    Calls `run` with the index of every batch in order and returns the results.
    When a batch runs out of memory and `can_split` allows it, `split` divides
    it in two (for good) and the first half is retried; any other error is
    raised. `batch_count` is asked again after every split.
    """
    results: list[Result] = []
    index = 0
    while index < batch_count():
        try:
            results.append(run(index))
            index += 1
            continue
        except Exception as error:
            if not (is_out_of_memory(error) and can_split(index)):
                raise
        # The handler has ended, so the failed attempt's tensors are released.
        split(index)
    return results
