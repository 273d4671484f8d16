# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Running heretic-llm 1.4.0 with the chosen scorer.

1.4.0's `heretic.main` builds its evaluator by the name `Evaluator`; for
teacher-forced KL, the launcher puts the subclass of `evaluator.py` there. It
also hides the plugin tables of `config.toml`, which 1.4.0 would reject as
unknown settings, and answers the menus in a non-interactive run.
"""

import sys

from ...settings import TeacherForcedKLSettings
from ..menus import non_interactive_select
from ..settings_sources import settings_without_tables
from .evaluator import teacher_forced_evaluator

#: The tables of `config.toml` that only heretic's plugin API understands.
PLUGIN_TABLES = ("scorer", "scorers")


def run_legacy_host(
    heretic_arguments: list[str],
    scorer_settings: TeacherForcedKLSettings | None,
    prompts_set_explicitly: bool,
    non_interactive: bool,
) -> None:
    """
    Runs 1.4.0's `main` with `heretic_arguments`: with teacher-forced KL measured
    by `scorer_settings`, or with 1.4.0's own first-token KL where they are None.
    """
    sys.argv = ["heretic", *heretic_arguments]
    import heretic.evaluator
    import heretic.main as heretic_main

    heretic_main.Settings = settings_without_tables(
        heretic_main.Settings, PLUGIN_TABLES
    )
    if scorer_settings is not None:
        heretic_main.Evaluator = teacher_forced_evaluator(
            heretic.evaluator.Evaluator, scorer_settings, prompts_set_explicitly
        )
    if non_interactive:
        heretic_main.prompt_select = non_interactive_select
    heretic_main.main()
