# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""heretic's part of the command line: reading and removing options, finding the model."""

import os
from typing import Any


def option_value(arguments: list[str], option: str) -> str | None:
    """The value of `option` in an argument list (`--option VALUE` or `--option=VALUE`)."""
    for index, argument in enumerate(arguments):
        if argument == option and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(option + "="):
            return argument.split("=", 1)[1]
    return None


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


def with_model_flag(heretic_arguments: list[str]) -> list[str]:
    """
    The arguments with `--model` in front of a trailing MODEL: heretic's own
    rule, which takes a trailing argument that is not a flag as the model.
    """
    arguments = list(heretic_arguments)
    if arguments and "--model" not in arguments and not arguments[-1].startswith("-"):
        arguments.insert(-1, "--model")
    return arguments


def model_argument(heretic_arguments: list[str], config: dict[str, Any]) -> str | None:
    """
    Finds the model heretic will load: `--model`, the trailing MODEL argument
    (heretic's own rule), `HERETIC_MODEL` or `model` in `config.toml`.
    """
    model = option_value(heretic_arguments, "--model")
    if model is not None:
        return model
    if heretic_arguments and not heretic_arguments[-1].startswith("-"):
        return heretic_arguments[-1]
    if os.environ.get("HERETIC_MODEL"):
        return os.environ["HERETIC_MODEL"]
    configured = config.get("model")
    return configured if isinstance(configured, str) else None
