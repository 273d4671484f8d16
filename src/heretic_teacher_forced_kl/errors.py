# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The user-facing error type, and one-line descriptions of exceptions and
validation errors.

Bad input stops with one line that names the setting (or flag) and the fix.
"""

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

#: The longest exception message that `one_line` keeps whole.
MAXIMUM_MESSAGE_LENGTH = 300


class UsageError(ValueError):
    """
    Bad input, reported as one line with exit status 2: before any model is
    loaded wherever it can be checked then, otherwise when it is met (a dataset
    that cannot be loaded, say).
    """


class RunError(Exception):
    """
    A command that failed after its work began (not bad input), reported as one
    line with exit status 1.
    """


class UnusableModelError(RunError, ValueError):
    """
    A loaded model that cannot be measured as it is (its logits hold NaN, say),
    reported as one line that names what is wrong and where.
    """


def one_line(error: BaseException) -> str:
    """An exception's message on a single line, shortened to a readable length."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) <= MAXIMUM_MESSAGE_LENGTH:
        return text
    return text[: MAXIMUM_MESSAGE_LENGTH - 3] + "..."


def validation_problems(
    error: ValidationError,
    location_name: Callable[[str], str] = str,
    with_input: bool = True,
) -> list[str]:
    """
    Describes every problem of a pydantic validation error as "location: message",
    with the rejected input where `with_input` is set. `location_name` turns the
    dotted location of the setting into the name the user typed (a flag, say).
    """
    problems = []
    for details in error.errors():
        location = ".".join(str(part) for part in details["loc"]) or "(table)"
        message = str(details["msg"]).removeprefix("Value error, ").rstrip(".")
        if with_input and "input" in details and details["type"] != "missing":
            message += f" (got {details['input']!r})"
        problems.append(f"{location_name(location)}: {message}")
    return problems


def describe_validation_error(
    error: ValidationError,
    prefix: str,
    suffix: str,
    location_name: Callable[[str], str] = str,
) -> str:
    """One line: `prefix`, every problem of the validation error, then `suffix`."""
    return f"{prefix}{'; '.join(validation_problems(error, location_name))}{suffix}"


def parse_json(text: str, source: str, expected: type, description: str) -> Any:
    """
    Parses the JSON value of a flag or variable named `source`, which must be of
    the `expected` type (`description` names it), with one-line errors.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{source}: invalid JSON ({error.msg}).") from None
    if not isinstance(value, expected):
        raise UsageError(f"{source}: the JSON value must be {description}.")
    return value
