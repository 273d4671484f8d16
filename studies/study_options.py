# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Command-line options that the studies share: their sizes, each an option whose
value, when left out, comes from the full or the smoke preset of the study.

A study describes its sizes as a frozen dataclass with two instances (`FULL`
and `SMOKE`); `add_size_options` makes one option for each field, in the
order given, with the full preset's value in its help text (so the help never
goes stale), and `fill_sizes` fills the options left out from the preset that
`--smoke` selects.
"""

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def not_negative(text: str) -> int:
    """An argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def add_size_options(
    parser: argparse.ArgumentParser,
    full: Any,
    descriptions: dict[str, str],
    types: dict[str, Callable[[str], int]] | None = None,
) -> None:
    """
    Adds `--<field>` for every field named in `descriptions` (underscores
    become dashes), of type `positive` unless `types` names another, with the
    description and the full preset's value (or "all" where it is None) as help.
    """
    known = {field.name for field in fields(full)}
    unknown = sorted(set(descriptions) - known)
    if unknown:
        raise ValueError(f"no such size field(s): {', '.join(unknown)}")
    for name, description in descriptions.items():
        value = getattr(full, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=(types or {}).get(name, positive),
            help=f"{description} ({'all' if value is None else value})",
        )


def fill_sizes(options: argparse.Namespace, full: Any, smoke: Any) -> None:
    """Sets every size option left out to the smoke preset's value with --smoke, else the full one's."""
    preset = smoke if options.smoke else full
    for field in fields(preset):
        if getattr(options, field.name, None) is None:
            setattr(options, field.name, getattr(preset, field.name))
