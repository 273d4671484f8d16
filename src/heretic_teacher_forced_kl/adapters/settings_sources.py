# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
heretic's `Settings` with customised sources.

heretic reads its settings with pydantic-settings from the command line,
`HERETIC_*` variables and `./config.toml`. The launcher changes what some
sources contribute by subclassing heretic's `Settings`: on 1.4.0 it hides the
plugin tables of `config.toml`, which 1.4.0 would reject as unknown settings;
with the plugin API it adds the flag settings to the scorer's table.
"""

from collections.abc import Callable
from typing import Any

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)


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


def settings_without_tables(
    settings_class: type[BaseSettings], tables: tuple[str, ...]
) -> type[BaseSettings]:
    """Returns a subclass of heretic's `Settings` that ignores `tables` of `config.toml`."""

    def hide_tables(
        settings_cls: type[BaseSettings],
        sources: tuple[PydanticBaseSettingsSource, ...],
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return tuple(
            FilteredSource(settings_cls, source, tables)
            if isinstance(source, TomlConfigSettingsSource)
            else source
            for source in sources
        )

    return settings_with_sources(settings_class, hide_tables)


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
