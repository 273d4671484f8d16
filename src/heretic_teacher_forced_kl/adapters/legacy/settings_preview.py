# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
heretic-llm 1.4.0's settings as its run will build them, read before it runs.

Unless `[scorer.TeacherForcedKL] prompts` is set, teacher-forced KL on 1.4.0
uses 1.4.0's `good_evaluation_prompts`, which 1.4.0 reads only after the model
has loaded. So that the launcher can check a local prompt file first, this
builds 1.4.0's `Settings` from the same sources as 1.4.0's run does (the
command line with its trailing MODEL rule, `HERETIC_*` variables, `./config.toml`
without the plugin tables), but without exiting on a bad flag: whatever
heretic itself would reject is left for heretic to report.
"""

from typing import Any

from pydantic_settings import (
    BaseSettings,
    CliSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from ..settings_sources import source_without_tables
from .launch import PLUGIN_TABLES

#: Options that make 1.4.0 run something other than a study.
OTHER_MODES = ("--collect-reproducibles", "--reproduce")


def heretic_settings_preview(heretic_arguments: list[str]) -> Any | None:
    """
    heretic-llm 1.4.0's `Settings` for `heretic_arguments`, or None when 1.4.0
    would not run a study with them (another mode, or settings it rejects).
    """
    from heretic.config import Settings

    if any(argument in OTHER_MODES for argument in heretic_arguments):
        return None
    arguments = list(heretic_arguments)
    # heretic's own rule: a trailing argument that is not a flag is the model.
    if arguments and "--model" not in arguments and not arguments[-1].startswith("-"):
        arguments.insert(-1, "--model")

    class PreviewSettings(Settings):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # The sources of 1.4.0's `Settings`, in its order of priority.
            return (
                init_settings,
                CliSettingsSource(
                    settings_cls,
                    cli_parse_args=arguments,
                    cli_implicit_flags=True,
                    cli_kebab_case=True,
                    cli_exit_on_error=False,
                ),
                EnvSettingsSource(settings_cls, env_prefix="HERETIC_"),
                dotenv_settings,
                file_secret_settings,
                source_without_tables(
                    settings_cls,
                    TomlConfigSettingsSource(settings_cls, toml_file="config.toml"),
                    PLUGIN_TABLES,
                ),
            )

    try:
        # The model is checked separately; a missing one is heretic's to report.
        return PreviewSettings(model="")
    except Exception:  # noqa: BLE001
        return None


def good_evaluation_prompts(heretic_arguments: list[str]) -> Any | None:
    """The `good_evaluation_prompts` that 1.4.0 will load, or None (see above)."""
    settings = heretic_settings_preview(heretic_arguments)
    return None if settings is None else settings.good_evaluation_prompts
