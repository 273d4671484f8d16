# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The main job's configuration (`examples/smollm2/config.toml`), checked the way
`scripts/main_job.sh` uses it: read by the launcher and by the installed
heretic from the example's folder. The study itself is the README's main job;
these checks catch a configuration that would stop it before the first trial.
"""

from heretic.config import Settings

from development.heretic_host import neutral_command_line
from heretic_teacher_forced_kl.adapters.plugin_api import HAS_PLUGIN_API
from heretic_teacher_forced_kl.adapters.settings_sources import settings_without_tables
from heretic_teacher_forced_kl.cli.launcher.config import (
    effective_settings,
    read_config_file,
)
from heretic_teacher_forced_kl.names import PLUGIN_TABLES
from tests.support.repository import REPOSITORY_ROOT

EXAMPLE_FOLDER = REPOSITORY_ROOT / "examples" / "smollm2"
MAIN_JOB_SCRIPT = REPOSITORY_ROOT / "scripts" / "main_job.sh"


def example_heretic_settings() -> Settings:
    """The installed heretic's settings as the main job's `heretic-kl` run builds them."""
    settings_class = (
        Settings if HAS_PLUGIN_API else settings_without_tables(Settings, PLUGIN_TABLES)
    )
    with neutral_command_line(EXAMPLE_FOLDER):
        return settings_class(model="SmolLM2-135M-Instruct")


def test_installed_heretic_accepts_the_main_job_config() -> None:
    settings = example_heretic_settings()
    assert settings.device_map == "cpu"
    assert settings.n_trials >= settings.n_startup_trials >= 1
    # The system prompt is what makes the small model refuse at all.
    assert "Sorry" in settings.system_prompt


def test_main_job_measures_teacher_forced_kl_over_three_tokens() -> None:
    settings, prompts_set = effective_settings(
        read_config_file(EXAMPLE_FOLDER / "config.toml"), {}
    )
    assert settings.kl_tokens == 3
    # The scorer falls back to heretic's good evaluation prompts.
    assert prompts_set is False
    assert (
        "--scorer teacher-forced-kl --kl-tokens 3 --non-interactive"
        in MAIN_JOB_SCRIPT.read_text()
    )


def test_every_prompt_file_of_the_main_job_has_enough_prompts() -> None:
    config = read_config_file(EXAMPLE_FOLDER / "config.toml")
    for name in (
        "good_prompts",
        "bad_prompts",
        "good_evaluation_prompts",
        "bad_evaluation_prompts",
    ):
        specification = config[name]
        path = (EXAMPLE_FOLDER / specification["dataset"]).resolve()
        assert path.is_file(), f"{name}: {path} is missing"
        split = specification["split"]
        assert split.startswith("[:") and split.endswith("]")
        wanted = int(split[2:-1])
        lines = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        assert len(lines) >= wanted, (
            f"{name}: {path} has {len(lines)} prompts, the split asks for {wanted}"
        )
