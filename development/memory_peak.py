# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The peak memory that one call allocates, on the CPU or on a CUDA device.

The peak is the highest total size of torch allocations alive during the call
minus what was alive when it started: every tensor the call creates
(activations, logits, log-probabilities, temporaries) counts, and whatever
already existed (model weights, stored references) does not.

- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`.
- CPU: torch has no peak counter for host memory, and the process's maximum
  resident set size only ever grows, so the call runs under `torch.profiler`
  with `profile_memory=True`, which records every allocation and release of
  the CPU allocator with its size; the running sum of those events, in time
  order, peaks at the answer. Memory that libraries allocate outside torch
  (the tokenizer, Python objects) is not counted. The profiler slows the call
  down, so time a call separately from measuring its memory.
"""

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch._C._autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

Result = TypeVar("Result")

#: The name the profiler gives its allocation events.
MEMORY_EVENT_NAME = "[memory]"


def synchronize(device: torch.device) -> None:
    """Waits for the work queued on `device` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def profiler_log_silenced() -> Iterator[None]:
    """
    Sends the native standard error to /dev/null while the block runs: the
    profiler's native library logs a line whenever it starts and stops, which
    no setting turns off. Python exceptions are unaffected.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_cpu_bytes(function: Callable[[], Result]) -> tuple[Result, int]:
    """Runs `function` and returns its result and the peak CPU bytes it allocated."""
    with profiler_log_silenced():
        profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        profiler.start()
    try:
        result = function()
    finally:
        with profiler_log_silenced():
            profiler.stop()
    events = [
        event
        for event in profiler.profiler.kineto_results.events()
        if event.name() == MEMORY_EVENT_NAME and event.device_type() == DeviceType.CPU
    ]
    events.sort(key=lambda event: event.start_ns())
    alive = 0
    peak = 0
    for event in events:
        alive += event.nbytes()
        peak = max(peak, alive)
    return result, peak


def peak_cuda_bytes(
    function: Callable[[], Result], device: torch.device
) -> tuple[Result, int]:
    """Runs `function`; returns its result and the peak bytes it allocated there."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    result = function()
    synchronize(device)
    return result, torch.cuda.max_memory_allocated(device) - start


def peak_bytes(
    function: Callable[[], Result], device: torch.device
) -> tuple[Result, int]:
    """Runs `function`; returns its result and the peak bytes it allocated there."""
    if device.type == "cuda":
        return peak_cuda_bytes(function, device)
    return peak_cpu_bytes(function)
