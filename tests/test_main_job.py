# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The main job's configuration (`examples/smollm2/config.toml`), checked the way
`scripts/main_job.sh` uses it: read by the launcher and by the installed
heretic from the example's folder. The study itself is the README's main job;
these checks catch a configuration that would stop it before the first trial.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from heretic.config import Settings

from heretic_teacher_forced_kl.cli.arguments import effective_settings, read_config_file
from heretic_teacher_forced_kl.cli.launch import has_plugin_api, settings_without_plugin_tables

from conftest import REPOSITORY_ROOT

EXAMPLE_FOLDER = REPOSITORY_ROOT / "examples" / "smollm2"
MAIN_JOB_SCRIPT = REPOSITORY_ROOT / "scripts" / "main_job.sh"


@contextmanager
def in_example_folder() -> Iterator[None]:
    """Runs the block from the example's folder with heretic's bare command line."""
    saved_arguments = sys.argv
    saved_directory = os.getcwd()
    sys.argv = ["heretic"]
    os.chdir(EXAMPLE_FOLDER)
    try:
        yield
    finally:
        sys.argv = saved_arguments
        os.chdir(saved_directory)


def example_heretic_settings() -> Settings:
    """The installed heretic's settings as the main job's `heretic-kl` run builds them."""
    settings_class = Settings if has_plugin_api() else settings_without_plugin_tables(Settings)
    with in_example_folder():
        return settings_class(model="SmolLM2-135M-Instruct")


def test_installed_heretic_accepts_the_main_job_config() -> None:
    settings = example_heretic_settings()
    assert settings.device_map == "cpu"
    assert settings.n_trials >= settings.n_startup_trials >= 1
    # The system prompt is what makes the small model refuse at all.
    assert "Sorry" in settings.system_prompt


def test_main_job_measures_teacher_forced_kl_over_three_tokens() -> None:
    settings, prompts_set = effective_settings(read_config_file(EXAMPLE_FOLDER / "config.toml"), {})
    assert settings.kl_tokens == 3
    # The scorer falls back to heretic's good evaluation prompts.
    assert prompts_set is False
    assert "--scorer teacher-forced-kl --kl-tokens 3 --non-interactive" in MAIN_JOB_SCRIPT.read_text()


def test_every_prompt_file_of_the_main_job_has_enough_prompts() -> None:
    settings = example_heretic_settings()
    for name in ("good_prompts", "bad_prompts", "good_evaluation_prompts", "bad_evaluation_prompts"):
        specification = getattr(settings, name)
        path = (EXAMPLE_FOLDER / specification.dataset).resolve()
        assert path.is_file(), f"{name}: {path} is missing"
        assert specification.split.startswith("[:") and specification.split.endswith("]")
        wanted = int(specification.split[2:-1])
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert len(lines) >= wanted, f"{name}: {path} has {len(lines)} prompts, the split asks for {wanted}"
