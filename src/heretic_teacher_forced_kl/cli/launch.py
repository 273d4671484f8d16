# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Running heretic with the chosen scorer, on either host.

- heretic-llm 1.4.0 (no plugin API): `heretic.main` builds its evaluator by the
  name `Evaluator`; the launcher puts a subclass there that measures
  teacher-forced KL, and hides the plugin tables of `config.toml`, which 1.4.0
  would reject as unknown settings.
- heretic with the plugin API: the launcher puts the chosen scorer in place of
  the built-in KL scorer in `scorers` (other scorers stay) and adds the flag
  settings to its `[scorer.<ClassName>]` table, so the study's saved settings,
  checkpoints and resume carry them.
"""

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from ..console import print
from ..plugin_names import TEACHER_FORCED_KL_PLUGIN
from .arguments import LauncherError, LaunchOptions, effective_settings
from .registry import BUILT_IN_KL_PLUGIN, registered_scorers

#: The tables of `config.toml` that only heretic's plugin API understands.
PLUGIN_TABLES = ("scorer", "scorers")


def has_plugin_api() -> bool:
    """Whether the installed heretic has the scorer plugin API."""
    from ..adapters.plugin_api import HAS_PLUGIN_API

    return HAS_PLUGIN_API


class FilteredSource(PydanticBaseSettingsSource):
    """A settings source that hides some top-level keys of another source."""

    def __init__(
        self,
        settings_class: type[BaseSettings],
        source: PydanticBaseSettingsSource,
        hidden_keys: tuple[str, ...],
    ) -> None:
        super().__init__(settings_class)
        self.source = source
        self.hidden_keys = hidden_keys

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in self.source().items()
            if key not in self.hidden_keys
        }


class ConstantSource(PydanticBaseSettingsSource):
    """A settings source that contributes fixed values (merged into the other sources)."""

    def __init__(
        self, settings_class: type[BaseSettings], values: dict[str, Any]
    ) -> None:
        super().__init__(settings_class)
        self.values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values


SourceTransform = Callable[
    [type[BaseSettings], tuple[PydanticBaseSettingsSource, ...]],
    tuple[PydanticBaseSettingsSource, ...],
]


def settings_with_sources(
    settings_class: type[BaseSettings], transform: SourceTransform
) -> type[BaseSettings]:
    """
    Returns a subclass of heretic's `Settings` whose settings sources are
    `transform(settings class, heretic's own sources)`.
    """

    class Settings(settings_class):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources = super().settings_customise_sources(
                settings_cls,
                init_settings,
                env_settings,
                dotenv_settings,
                file_secret_settings,
            )
            return transform(settings_cls, sources)

    return Settings


def settings_without_plugin_tables(
    settings_class: type[BaseSettings],
) -> type[BaseSettings]:
    """
    Returns a subclass of heretic 1.4.0's `Settings` that ignores the plugin tables
    of `config.toml` (the launcher reads `[scorer.TeacherForcedKL]` itself).
    """

    def hide_plugin_tables(
        settings_cls: type[BaseSettings],
        sources: tuple[PydanticBaseSettingsSource, ...],
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return tuple(
            FilteredSource(settings_cls, source, PLUGIN_TABLES)
            if isinstance(source, TomlConfigSettingsSource)
            else source
            for source in sources
        )

    return settings_with_sources(settings_class, hide_plugin_tables)


def settings_with_scorer_table(
    settings_class: type[BaseSettings], class_name: str, table: dict[str, Any]
) -> type[BaseSettings]:
    """
    Returns a subclass of heretic's `Settings` in which `table` is merged into
    `[scorer.<class_name>]`, above `config.toml` and below the command line, the
    environment and the init values that heretic uses when it resumes a study.
    """

    def add_scorer_table(
        settings_cls: type[BaseSettings],
        sources: tuple[PydanticBaseSettingsSource, ...],
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        customised = list(sources)
        position = next(
            (
                index
                for index, source in enumerate(customised)
                if isinstance(source, TomlConfigSettingsSource)
            ),
            len(customised),
        )
        customised.insert(
            position, ConstantSource(settings_cls, {"scorer": {class_name: table}})
        )
        return tuple(customised)

    return settings_with_sources(settings_class, add_scorer_table)


def non_interactive_select(message: str, choices: list[Any]) -> Any:
    """
    Answers heretic 1.4.0's menus without a terminal: at the trial menu it prints
    the Pareto front and chooses "Exit program", which every other menu gets too.
    """
    if message.startswith("Which trial"):
        print()
        print("[bold]Pareto front[/] (refusals against KL divergence):")
        for choice in choices:
            value = getattr(choice, "value", None)
            if value not in ("continue", "", None):
                print(f"* {getattr(choice, 'title', choice)}")
        print()
        print("Non-interactive run: exiting after the study.")
        return ""
    print(
        f"[yellow]Non-interactive run: heretic asks {message!r}; answering "
        '"Exit program". Run without --non-interactive to answer it.[/]'
    )
    return ""


def non_interactive_answer(value: Any, question: Any, unsafe: bool = False) -> Any:
    """
    Answers heretic master's menus without a terminal: a value set on the command
    line (such as `--trial-index`) is used as it is; every other question gets the
    empty answer, which at the trial menu means "Exit program".
    """
    return value if value is not None else ""


def current_scorers(
    heretic_arguments: list[str],
    config: dict[str, Any],
    settings_class: type[BaseSettings],
) -> list[dict[str, Any]]:
    """
    The `scorers` list heretic would use: `--scorers` on the command line,
    `HERETIC_SCORERS`, `config.toml`, or heretic's default, in that order.
    """
    for index, argument in enumerate(heretic_arguments):
        value = None
        if argument == "--scorers" and index + 1 < len(heretic_arguments):
            value = heretic_arguments[index + 1]
        elif argument.startswith("--scorers="):
            value = argument.split("=", 1)[1]
        if value is not None:
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise LauncherError(f"--scorers: invalid JSON ({error.msg}).") from None
    if os.environ.get("HERETIC_SCORERS"):
        try:
            return json.loads(os.environ["HERETIC_SCORERS"])
        except json.JSONDecodeError as error:
            raise LauncherError(
                f"HERETIC_SCORERS: invalid JSON ({error.msg})."
            ) from None
    if isinstance(config.get("scorers"), list):
        return config["scorers"]
    default = settings_class.model_fields["scorers"].get_default(
        call_default_factory=True
    )
    return [
        dict(entry) if isinstance(entry, dict) else entry.model_dump()
        for entry in default
    ]


def replace_kl_scorer(
    scorers: list[dict[str, Any]], plugin: str
) -> list[dict[str, Any]]:
    """
    Puts `plugin` in place of every KL-measuring scorer (heretic's built-in one or
    any registered one), keeping their optimization settings; other scorers stay.
    Appends it, minimized, when there is none.
    """
    kl_plugins = set(registered_scorers().values()) | {BUILT_IN_KL_PLUGIN}
    replaced: list[dict[str, Any]] = []
    placed = False
    for entry in scorers:
        if entry.get("plugin") in kl_plugins:
            if placed:
                continue
            replaced.append({**entry, "plugin": plugin})
            placed = True
        else:
            replaced.append(entry)
    if not placed:
        replaced.append({"plugin": plugin, "optimization": "minimize"})
    return replaced


def without_option(arguments: list[str], option: str) -> list[str]:
    """Removes `option` and its value from an argument list."""
    result: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
            continue
        if argument == option:
            skip = True
            continue
        if argument.startswith(option + "="):
            continue
        result.append(argument)
    return result


def launch_legacy(options: LaunchOptions, config: dict[str, Any]) -> None:
    """Runs heretic-llm 1.4.0 with the chosen scorer."""
    if options.scorer.plugin not in (TEACHER_FORCED_KL_PLUGIN, BUILT_IN_KL_PLUGIN):
        raise LauncherError(
            f"--scorer {options.scorer.name}: heretic-llm 1.4.0 has no plugin API; "
            "it runs teacher-forced-kl or kl-divergence only (install heretic with the "
            "plugin API for other scorers)."
        )
    settings, prompts_set_explicitly = effective_settings(config, options.setting_flags)

    sys.argv = ["heretic", *options.heretic_arguments]
    import heretic.evaluator
    import heretic.main as heretic_main

    from ..adapters.legacy_evaluator import teacher_forced_evaluator

    heretic_main.Settings = settings_without_plugin_tables(heretic_main.Settings)
    if options.scorer.plugin == TEACHER_FORCED_KL_PLUGIN:
        heretic_main.Evaluator = teacher_forced_evaluator(
            heretic.evaluator.Evaluator, settings, prompts_set_explicitly
        )
    if options.non_interactive:
        heretic_main.prompt_select = non_interactive_select
    heretic_main.main()


def launch_plugin_host(options: LaunchOptions, config: dict[str, Any]) -> None:
    """Runs heretic with the plugin API, the chosen scorer in place of the built-in KL."""
    import heretic.main as heretic_main

    arguments = options.heretic_arguments
    scorers = replace_kl_scorer(
        current_scorers(arguments, config, heretic_main.Settings), options.scorer.plugin
    )
    # The scorers go first: heretic takes a trailing argument that is not a flag as MODEL.
    arguments = [
        "--scorers",
        json.dumps(scorers),
        *without_option(arguments, "--scorers"),
    ]
    sys.argv = ["heretic", *arguments]

    if options.scorer.plugin == TEACHER_FORCED_KL_PLUGIN:
        # Validate now, before any model is loaded, with the table heretic will see.
        effective_settings(config, options.setting_flags)
        if options.setting_flags:
            heretic_main.Settings = settings_with_scorer_table(
                heretic_main.Settings, options.scorer.class_name, options.setting_flags
            )
    if options.non_interactive:
        if hasattr(heretic_main, "ask_if_unset"):
            heretic_main.ask_if_unset = non_interactive_answer
        if hasattr(heretic_main, "prompt_select"):
            heretic_main.prompt_select = non_interactive_select
    heretic_main.main()
