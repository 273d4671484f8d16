# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
A progress bar for the long steps of `heretic-kl compare`, without touching the engine.

The engine works batch by batch; the bar counts prompts. Generation is counted
where `ComparisonPromptModel.generate` returns; teacher-forced passes are
counted by a forward hook on the Hugging Face model, which is installed only
for the duration of one step and ignores the forward passes made while
generating. A pass that runs out of memory never reaches the hook, so a batch
that the engine splits and retries is counted once.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ...console import console
from .models import ComparisonPromptModel


class ComparisonProgress:
    """One transient Rich progress display with a bar per step."""

    def __init__(self, prompt_count: int, enabled: bool = True) -> None:
        self.prompt_count = prompt_count
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("prompts"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self.generating = False

    def __enter__(self) -> "ComparisonProgress":
        self.progress.start()
        return self

    def __exit__(self, *exception: object) -> None:
        self.progress.stop()

    def advance(self, task: TaskID, prompts: int) -> None:
        """Counts `prompts` more prompts of `task`, never past its total."""
        completed = (
            self.progress.tasks[task].completed if task in self.progress.task_ids else 0
        )
        self.progress.update(
            task, completed=min(completed + prompts, self.prompt_count)
        )

    @contextmanager
    def generation(
        self, model: ComparisonPromptModel, description: str
    ) -> Iterator[None]:
        """Counts the prompts that `model.generate` completes while the block runs."""
        task = self.progress.add_task(description, total=self.prompt_count)
        original_generate = model.generate

        def generate(prompts: list[Any], **kwargs: Any) -> tuple[Any, Any]:
            self.generating = True
            try:
                result = original_generate(prompts, **kwargs)
            finally:
                self.generating = False
            self.advance(task, len(prompts))
            return result

        model.generate = generate  # type: ignore[method-assign]
        try:
            yield
        finally:
            del model.generate

    @contextmanager
    def forward_passes(self, hf_model: Any, description: str) -> Iterator[None]:
        """Counts the prompts of the teacher-forced forward passes of `hf_model` in the block."""
        task = self.progress.add_task(description, total=self.prompt_count)

        def hook(
            module: Any, arguments: tuple[Any, ...], kwargs: dict[str, Any], output: Any
        ) -> None:
            if self.generating:
                return
            input_ids = kwargs.get("input_ids")
            if input_ids is None and arguments:
                input_ids = arguments[0]
            if input_ids is not None:
                self.advance(task, int(input_ids.shape[0]))

        handle = hf_model.register_forward_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()
