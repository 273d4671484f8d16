# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The `heretic-kl` console script.

    heretic-kl [heretic-kl options] [heretic options] MODEL
    heretic-kl compare ORIGINAL CANDIDATE [--prompts SPEC] [--kl-tokens N] ...
    heretic-kl --version | --print-config

Both commands report bad input as one line with exit status 2, and a failure
after the work began (a model whose logits hold NaN, a report that cannot be
written) as one line with exit status 1.
"""

import sys

from rich.markup import escape

from ..console import console, quiet_harmless_warnings
from ..errors import RunError, UsageError
from .about import default_config_text, version_text

#: The exit status for bad input, as argparse uses it.
USAGE_ERROR_STATUS = 2

#: The exit status for a failure after the work began.
FAILURE_STATUS = 1


def fail(message: str, status: int = USAGE_ERROR_STATUS) -> int:
    """Prints a one-line error and returns `status` (by default, that of bad input)."""
    console.print(f"[red]heretic-kl: error: {escape(message)}[/]", soft_wrap=True)
    return status


def main(arguments: list[str] | None = None) -> int:
    """Runs the launcher (or `compare`) and returns the exit status."""
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    quiet_harmless_warnings()
    try:
        if arguments and arguments[0] == "compare":
            from .compare.command import compare

            return compare(arguments[1:])
        if "--version" in arguments:
            print(version_text())
            return 0
        if "--print-config" in arguments:
            print(default_config_text(), end="")
            return 0
        from .launcher.run import launch

        return launch(arguments)
    except UsageError as error:
        return fail(str(error))
    except RunError as error:
        return fail(str(error), FAILURE_STATUS)


def entry_point() -> None:
    """The console script: exits with `main`'s status."""
    sys.exit(main())
