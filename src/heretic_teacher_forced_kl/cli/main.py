# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The `heretic-kl` console script.

    heretic-kl [heretic's flags] [--scorer NAME] [--kl-tokens N] [MODEL]
    heretic-kl compare ORIGINAL CANDIDATE [--prompts SPEC] [--kl-tokens N] ...
"""

import sys

from rich.markup import escape

from ..console import console
from .arguments import (
    LauncherError,
    build_parser,
    check_model,
    model_argument,
    parse_arguments,
    read_config_file,
)


def print_help() -> None:
    """Prints the launcher's options, then heretic's own help."""
    build_parser().print_help()
    print()
    print("heretic's options (all accepted by heretic-kl):")
    print()
    sys.stdout.flush()
    sys.argv = ["heretic", "--help"]
    # heretic parses its command line, prints its help and exits when
    # `heretic.main` is imported with --help on the command line.
    import heretic.main  # noqa: F401


def fail(message: str) -> int:
    """Prints a one-line error and returns the exit status for bad input."""
    console.print(f"[red]heretic-kl: error: {escape(message)}[/]", soft_wrap=True)
    return 2


def main(arguments: list[str] | None = None) -> int:
    """Runs the launcher (or `compare`) and returns the exit status."""
    arguments = list(sys.argv[1:] if arguments is None else arguments)

    if arguments and arguments[0] == "compare":
        from .compare import main as compare_main

        return compare_main(arguments[1:])

    if "-h" in arguments or "--help" in arguments:
        print_help()
        return 0

    try:
        options = parse_arguments(arguments)
        config = read_config_file()
        check_model(model_argument(options.heretic_arguments, config))

        from .launch import has_plugin_api, launch_legacy, launch_plugin_host

        if has_plugin_api():
            launch_plugin_host(options, config)
        else:
            launch_legacy(options, config)
    except LauncherError as error:
        return fail(str(error))
    return 0


def entry_point() -> None:
    """The console script: exits with `main`'s status."""
    sys.exit(main())
