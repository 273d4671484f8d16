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
    """A settings source that passes what another source contributes through a filter."""

    def __init__(
        self,
        settings_class: type[BaseSettings],
        source: PydanticBaseSettingsSource,
        keep: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        super().__init__(settings_class)
        self.source = source
        self.keep = keep

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.keep(self.source())


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


def source_without_tables(
    settings_class: type[BaseSettings],
    source: PydanticBaseSettingsSource,
    tables: tuple[str, ...],
) -> FilteredSource:
    """`source` without the top-level `tables` (of `config.toml`)."""

    def without_tables(values: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in values.items() if key not in tables}

    return FilteredSource(settings_class, source, without_tables)


def settings_without_tables(
    settings_class: type[BaseSettings], tables: tuple[str, ...]
) -> type[BaseSettings]:
    """Returns a subclass of heretic's `Settings` that ignores `tables` of `config.toml`."""

    def hide_tables(
        settings_cls: type[BaseSettings],
        sources: tuple[PydanticBaseSettingsSource, ...],
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return tuple(
            source_without_tables(settings_cls, source, tables)
            if isinstance(source, TomlConfigSettingsSource)
            else source
            for source in sources
        )

    return settings_with_sources(settings_class, hide_tables)


def settings_with_scorer_table(
    settings_class: type[BaseSettings], class_name: str, table: dict[str, Any]
) -> type[BaseSettings]:
    """
    Returns a subclass of heretic's `Settings` in which the settings of `table`
    take the place of the same settings in `[scorer.<class_name>]` of
    `config.toml`, whole (a `prompts` table replaces the configured one, its
    split and column included), above `config.toml` and below the command
    line, the environment and the init values that heretic uses when it resumes
    a study.
    """

    def without_replaced_settings(values: dict[str, Any]) -> dict[str, Any]:
        scorer_tables = values.get("scorer")
        if not isinstance(scorer_tables, dict) or not isinstance(
            scorer_tables.get(class_name), dict
        ):
            return values
        kept = {
            key: value
            for key, value in scorer_tables[class_name].items()
            if key not in table
        }
        return {**values, "scorer": {**scorer_tables, class_name: kept}}

    def add_scorer_table(
        settings_cls: type[BaseSettings],
        sources: tuple[PydanticBaseSettingsSource, ...],
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        flag_table = ConstantSource(settings_cls, {"scorer": {class_name: table}})
        customised: list[PydanticBaseSettingsSource] = []
        for source in sources:
            if isinstance(source, TomlConfigSettingsSource):
                customised.append(flag_table)
                source = FilteredSource(settings_cls, source, without_replaced_settings)
            customised.append(source)
        if flag_table not in customised:
            customised.append(flag_table)
        return tuple(customised)

    return settings_with_sources(settings_class, add_scorer_table)
