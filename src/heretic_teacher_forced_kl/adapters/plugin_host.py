# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Running heretic with the plugin API (heretic master) with the chosen scorer.

The launcher has already put the scorer into heretic's `--scorers` argument;
here the flag settings join the scorer's `[scorer.<ClassName>]` table, so that
the study's saved settings, checkpoints and resume carry them, and the menus
get answers in a non-interactive run.
"""

import sys
from typing import Any

from .menus import non_interactive_answer, non_interactive_select
from .settings_sources import settings_with_scorer_table


def run_plugin_host(
    heretic_arguments: list[str],
    scorer_class_name: str,
    setting_flags: dict[str, Any],
    non_interactive: bool,
) -> None:
    """Runs heretic master's `main` with `heretic_arguments`."""
    import heretic.main as heretic_main

    sys.argv = ["heretic", *heretic_arguments]
    if setting_flags:
        heretic_main.Settings = settings_with_scorer_table(
            heretic_main.Settings, scorer_class_name, setting_flags
        )
    if non_interactive:
        if hasattr(heretic_main, "ask_if_unset"):
            heretic_main.ask_if_unset = non_interactive_answer
        if hasattr(heretic_main, "prompt_select"):
            heretic_main.prompt_select = non_interactive_select
    heretic_main.main()
