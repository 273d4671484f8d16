# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Progress of the long steps of `heretic-kl compare`, without touching the engine.

On a terminal, a transient bar per step; elsewhere (a log file, a pipe, a job
scheduler), where a bar would print nothing until the end, plain lines: one
each time a step passes another tenth of its prompts. The engine works batch
by batch; the progress counts prompts. Generation is counted
where `ComparisonPromptModel.generate` returns; teacher-forced passes are
counted by a forward hook on the Hugging Face model, which is installed only
for the duration of one step and ignores the forward passes made while
generating. A pass that runs out of memory never reaches the hook, so a batch
that the engine splits and retries is counted once.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from rich.markup import escape
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

#: Off a terminal, a line is printed each time a step passes another this many
#: parts of its prompts (and when it ends).
PLAIN_LINE_STEPS = 10


class ComparisonProgress:
    """
    One transient Rich progress display with a bar per step on a terminal, or
    plain progress lines elsewhere (`plain`, or when the console is no terminal).
    """

    def __init__(
        self, prompt_count: int, enabled: bool = True, plain: bool | None = None
    ) -> None:
        self.prompt_count = prompt_count
        self.plain = enabled and (not console.is_terminal if plain is None else plain)
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("prompts"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled or self.plain,
        )
        self.generating = False
        # The number of tenths of its prompts that each step has reported in plain lines.
        self.reported_steps: dict[TaskID, int] = {}

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
        if self.plain:
            self.print_line(task)

    def print_line(self, task: TaskID) -> None:
        """Prints a plain progress line when `task` has passed another tenth of its prompts."""
        state = self.progress.tasks[task]
        completed = int(state.completed)
        steps = completed * PLAIN_LINE_STEPS // max(self.prompt_count, 1)
        if steps <= self.reported_steps.get(task, 0):
            return
        self.reported_steps[task] = steps
        elapsed = timedelta(seconds=int(state.elapsed or 0))
        console.print(
            f"* {escape(state.description)}: {completed}/{self.prompt_count} prompts "
            f"({elapsed})",
            soft_wrap=True,
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
        """
        Counts the prompts of the teacher-forced forward passes of `hf_model` in
        the block. The step's clock starts with its first such pass, not with the
        block, which may generate first.
        """
        task = self.progress.add_task(description, total=self.prompt_count, start=False)

        def start(
            module: Any, arguments: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> None:
            if not self.generating:
                self.progress.start_task(task)

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

        handles = [
            hf_model.register_forward_pre_hook(start, with_kwargs=True),
            hf_model.register_forward_hook(hook, with_kwargs=True),
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
