# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
heretic's own settings, checked before heretic runs.

heretic reports a missing model, a misspelled setting or a bad flag with a
multi-line message or a full usage text, and then exits with status 0 (a
settings error) or prints argparse's usage (a bad flag); heretic master keeps a
misspelled setting of `config.toml` without a word (it keeps unknown keys for
the plugins' tables). The launcher builds
heretic's `Settings` from the same sources first (the command line with
heretic's trailing MODEL rule, `HERETIC_*` variables, `./config.toml` without
the scorer tables, which the scorer settings check covers) and turns what
heretic would reject into one line with exit status 2.
"""

from typing import Any

from ...errors import UsageError, one_line, validation_problems
from ...names import PLUGIN_TABLES
from ...settings import CONFIG_FILE
from .heretic_arguments import with_model_flag

#: Options that make heretic run something other than a study, without MODEL.
OTHER_MODES = ("--collect-reproducibles", "--reproduce")

#: The launcher's usage, for errors about the order of the arguments.
USAGE_LINE = "heretic-kl [heretic-kl options] [heretic options] MODEL"

#: Where heretic's settings are described, for the end of an error.
HERETIC_HELP = "heretic-kl --help lists heretic's settings"


def check_argument_order(heretic_arguments: list[str]) -> None:
    """Stops with one line when MODEL is followed by options: heretic takes it last."""
    if len(heretic_arguments) > 1 and not heretic_arguments[0].startswith("-"):
        raise UsageError(
            f"MODEL comes last: {heretic_arguments[0]!r} is followed by "
            f"{heretic_arguments[1]!r}; write {USAGE_LINE}."
        )


def check_heretic_settings(heretic_arguments: list[str]) -> Any | None:
    """
    Builds heretic's `Settings` as heretic's run will and returns them, or stops
    with a one-line `UsageError` where heretic would reject them. Returns None
    for heretic's modes that run no study (`OTHER_MODES`), which heretic checks
    itself. Both hosts read what the run will use from the returned settings
    (the checkpoint folder, 1.4.0's `good_evaluation_prompts`), so that
    heretic's settings are built before the run once, here.
    """
    check_argument_order(heretic_arguments)
    if any(argument in OTHER_MODES for argument in heretic_arguments):
        return None
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        settings = heretic_settings(heretic_arguments)
    except SettingsError as error:
        message = one_line(error).removeprefix("error parsing CLI: ")
        raise UsageError(f"heretic: {message}; {HERETIC_HELP}.") from None
    except ValidationError as error:
        raise UsageError(describe_heretic_error(error)) from None
    # heretic master keeps unknown keys for plugin tables (`[scorer.<Name>]`),
    # so a misspelled setting would pass without a word; a table is a plugin's.
    unknown = {
        name: value
        for name, value in (getattr(settings, "model_extra", None) or {}).items()
        if not isinstance(value, dict)
    }
    if unknown:
        problems = "; ".join(
            f"{name}: not a setting of heretic (got {value!r})"
            for name, value in unknown.items()
        )
        raise UsageError(
            f"heretic's settings: {problems}; correct it in {CONFIG_FILE}, the "
            f"HERETIC_* variable or the flag ({HERETIC_HELP})."
        )
    return settings


def describe_heretic_error(error: Any) -> str:
    """One line for heretic's settings validation error."""
    problems = error.errors()
    if any(
        problem["type"] == "missing" and tuple(problem["loc"]) == ("model",)
        for problem in problems
    ):
        return (
            "MODEL: no model given; write "
            f"{USAGE_LINE} (a Hugging Face model ID or a model folder), or set "
            f"model in {CONFIG_FILE}."
        )
    return (
        f"heretic's settings: {'; '.join(validation_problems(error))}; correct it in "
        f"{CONFIG_FILE}, the HERETIC_* variable or the flag ({HERETIC_HELP})."
    )


def heretic_settings(heretic_arguments: list[str]) -> Any:
    """heretic's `Settings` for `heretic_arguments`, raising what heretic would reject."""
    # The class that heretic's `main` builds, imported without loading heretic's models.
    from heretic.config import Settings
    from pydantic_settings import (
        BaseSettings,
        CliSettingsSource,
        EnvSettingsSource,
        PydanticBaseSettingsSource,
        TomlConfigSettingsSource,
    )

    from ...adapters.settings_sources import source_without_tables

    arguments = with_model_flag(heretic_arguments)

    class CheckedSettings(Settings):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # The sources of heretic's `Settings` (1.4.0 and master), in its order
            # of priority, with errors raised instead of exiting.
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
                    TomlConfigSettingsSource(settings_cls, toml_file=CONFIG_FILE),
                    PLUGIN_TABLES,
                ),
            )

    return CheckedSettings()
