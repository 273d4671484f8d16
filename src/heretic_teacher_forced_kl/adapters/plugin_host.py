# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Running heretic with the plugin API (heretic master) with the chosen scorer.

The launcher has already put the scorer into heretic's `--scorers` argument;
here the flag settings join the scorer's `[scorer.<ClassName>]` table, so that
the study's saved settings, checkpoints and resume carry them, and in a
non-interactive run heretic's questions are answered by `NonInteractiveMenus`
(heretic's `ask_if_unset` still uses any value given on the command line).
"""

import sys
from typing import Any

from .menus import NonInteractiveMenus, ScriptedQuestionary
from .settings_sources import settings_with_scorer_table


def run_plugin_host(
    heretic_arguments: list[str],
    scorer_class_name: str,
    setting_flags: dict[str, Any],
    menus: NonInteractiveMenus | None,
) -> None:
    """Runs heretic master's `main` with `heretic_arguments`."""
    import heretic.main as heretic_main

    sys.argv = ["heretic", *heretic_arguments]
    if setting_flags:
        heretic_main.Settings = settings_with_scorer_table(
            heretic_main.Settings, scorer_class_name, setting_flags
        )
    if menus is not None:
        heretic_main.questionary = ScriptedQuestionary(menus)
        if hasattr(heretic_main, "print"):
            heretic_main.print = menus.filtered_print(heretic_main.print)
    heretic_main.main()
