# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Building heretic-llm's own `Settings` and `Model` inside a process: the tests
build them with `heretic_model`, the benchmarks and the evidence study with
`neutral_command_line`.

heretic's `Settings` parses the command line and reads `./config.toml`, so
they are built with a neutral command line, from a folder without a config.
"""

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from heretic.config import Settings
from heretic.model import Model
from heretic.utils import Prompt

#: The system prompt of every test prompt.
SYSTEM_PROMPT = "You are a helpful assistant."

#: Prompts of very different lengths, so that left padding varies within a batch.
MIXED_LENGTH_PROMPTS = [
    "Hi",
    "Tell me a short story about a brave little cat who lived in a lighthouse.",
    "What is the capital of France?",
    "Why?",
    "Explain in simple words how rain forms, and why clouds do not fall.",
    "List three colors.",
    "Write one sentence about the sea.",
]


@contextmanager
def neutral_command_line(folder: Path | None = None) -> Iterator[None]:
    """
    Runs the block with an empty command line, in `folder` or, by default, in a
    temporary folder without `config.toml`.
    """
    saved_arguments = sys.argv
    saved_directory = os.getcwd()
    with tempfile.TemporaryDirectory() as temporary_directory:
        sys.argv = ["heretic"]
        os.chdir(folder if folder is not None else temporary_directory)
        try:
            yield
        finally:
            sys.argv = saved_arguments
            os.chdir(saved_directory)


def heretic_settings(model_path: Path, **overrides: Any) -> Settings:
    """heretic's settings for a CPU, float32 run of `model_path`."""
    values: dict[str, Any] = {
        "model": str(model_path),
        "device_map": "cpu",
        "dtypes": ["float32"],
        "batch_size": 3,
        "system_prompt": SYSTEM_PROMPT,
    }
    values.update(overrides)
    with neutral_command_line():
        return Settings(**values)


def heretic_model(model_path: Path, **overrides: Any) -> Model:
    """heretic's `Model` (PEFT-wrapped, LoRA adapters at zero) for `model_path`."""
    settings = heretic_settings(model_path, **overrides)
    with neutral_command_line():
        return Model(settings)


def prompts(users: list[str] | None = None) -> list[Prompt]:
    """heretic prompts with the test system prompt."""
    return [
        Prompt(system=SYSTEM_PROMPT, user=user)
        for user in (users or MIXED_LENGTH_PROMPTS)
    ]
