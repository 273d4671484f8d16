# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
A test double of heretic master's `heretic.main`, for hosts without the plugin API.

It follows `shared/heretic-host-api.md`: settings come from, highest priority
first, init values (a resumed study), the command line (kebab-case flags,
`--scorers` as JSON, a trailing MODEL argument), `HERETIC_*` environment
variables and `./config.toml`, whose extra tables (such as
`[scorer.<ClassName>]`) are kept. Instead of loading a model, `main()` prints
the settings it would run with, as one JSON line, and saves them the way a
study does (`model_dump_json`).
"""

import json
import sys
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    CliSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ScorerConfig(BaseModel):
    """One entry of `scorers`."""

    plugin: str
    optimization: Literal["minimize", "maximize", "none"]
    instance_name: str | None = None


class Settings(BaseSettings):
    """The part of heretic master's settings that the launcher touches."""

    model: str = Field(description="Hugging Face model ID, or path to model on disk.")
    n_trials: int = Field(default=200, description="Number of trials.")
    scorers: list[ScorerConfig] = Field(
        default_factory=lambda: [
            ScorerConfig(
                plugin="heretic.scorers.keyword_rate.KeywordRate",
                optimization="minimize",
            ),
            ScorerConfig(
                plugin="heretic.scorers.kl_divergence.KLDivergence",
                optimization="minimize",
            ),
        ],
        description="List of scorer plugin configs.",
    )

    model_config = SettingsConfigDict(extra="allow")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            CliSettingsSource(
                settings_cls,
                cli_parse_args=True,
                cli_implicit_flags=True,
                cli_kebab_case=True,
            ),
            EnvSettingsSource(settings_cls, env_prefix="HERETIC_"),
            dotenv_settings,
            file_secret_settings,
            TomlConfigSettingsSource(settings_cls, toml_file="config.toml"),
        )


def main() -> None:
    """Parses the settings as heretic does and reports them instead of running a study."""
    arguments = sys.argv
    if (
        len(arguments) > 1
        and "--model" not in arguments
        and not arguments[-1].startswith("-")
    ):
        arguments.insert(-1, "--model")
    settings = Settings()  # type: ignore[call-arg]
    saved = json.loads(settings.model_dump_json())
    report: dict[str, Any] = {
        "model": settings.model,
        "scorers": [scorer.model_dump() for scorer in settings.scorers],
        "scorer_tables": (settings.model_extra or {}).get("scorer", {}),
        "saved_scorer_tables": saved.get("scorer", {}),
        "n_trials": settings.n_trials,
    }
    print("HOST " + json.dumps(report))
