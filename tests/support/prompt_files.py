# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""Prompt files in the plain text format heretic reads, for the `write_prompt_file` fixture."""

from collections.abc import Callable, Sequence
from pathlib import Path

# The type of the `write_prompt_file` fixture: it takes the prompts and an
# optional file name and returns the path of the written file.
PromptFileWriter = Callable[..., Path]


def prompt_file_writer(directory: Path) -> PromptFileWriter:
    """
    Returns a function that writes prompts to a text file in `directory`, one
    per line: heretic's plain text dataset format, where empty lines are
    ignored. Call it as `write(prompts)` or `write(prompts, "name.txt")`; it
    returns the file's path.
    """

    def write(prompts: Sequence[str], name: str = "prompts.txt") -> Path:
        """Write `prompts` to `directory / name` and return that path."""
        if isinstance(prompts, str):
            raise TypeError("Pass a sequence of prompts, not a single string.")
        for prompt in prompts:
            if "\n" in prompt or "\r" in prompt:
                raise ValueError(
                    f"A prompt in a text file cannot span lines: {prompt!r}"
                )
            if not prompt.strip():
                raise ValueError(
                    "Heretic skips empty lines, so prompts must not be empty."
                )
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{prompt}\n" for prompt in prompts)
        path.write_text(text, encoding="utf-8")
        return path

    return write
