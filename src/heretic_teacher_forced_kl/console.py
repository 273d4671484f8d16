# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The console that the heretic adapters and the commands print to, styled like heretic's."""

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)

#: Prints Rich markup, exactly like `heretic.utils.print`.
print = console.print


def print_item(message: str) -> None:
    """Prints a plain-text message of the engine as a list item, markup escaped."""
    console.print(f"* {escape(message)}")
