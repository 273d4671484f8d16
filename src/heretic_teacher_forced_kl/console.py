# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The console that every part of the package prints to, styled like heretic's."""

from rich.console import Console

console = Console(highlight=False)

#: Prints Rich markup, exactly like `heretic.utils.print`.
print = console.print
