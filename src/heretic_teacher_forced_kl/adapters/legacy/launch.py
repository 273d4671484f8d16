# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Running heretic-llm 1.4.0 with the chosen scorer.

1.4.0's `heretic.main` builds its evaluator by the name `Evaluator` and its
study storage by the name `JournalStorage`; the launcher puts its own in both
places: an evaluator that measures the study's damage measure (teacher-forced
KL, or 1.4.0's own first-token KL) and a storage that saves that measure with
the study (`study.py`). It also hides the plugin tables of `config.toml`, which
1.4.0 would reject as unknown settings, and in a non-interactive run answers
1.4.0's menus (`prompt_select`, `prompt_text`, `prompt_path`) from
`NonInteractiveMenus`.
"""

import os
import sys
from typing import Any

from ..menus import NonInteractiveMenus
from ..settings_sources import settings_without_tables
from .evaluator import teacher_forced_evaluator
from .study import (
    Measure,
    StudyMeasure,
    observing_checkpoint_answer,
    recording_storage,
)

#: The tables of `config.toml` that only heretic's plugin API understands.
PLUGIN_TABLES = ("scorer", "scorers")

#: The variables by which 1.4.0 recognises a notebook, where its menus read
#: numbered answers from standard input instead of needing a terminal.
NOTEBOOK_VARIABLES = ("COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE")


def menus_read_standard_input() -> bool:
    """Whether 1.4.0's menus read numbered answers from standard input (in a notebook)."""
    return any(os.getenv(name) for name in NOTEBOOK_VARIABLES)


def run_legacy_host(
    heretic_arguments: list[str],
    requested: Measure,
    sources: dict[str, str],
    menus: NonInteractiveMenus | None,
) -> None:
    """
    Runs 1.4.0's `main` with `heretic_arguments`, measuring damage with the
    `requested` measure, or with the one saved with a study that the run continues.
    `sources` says where each requested value came from; `menus` answers the
    menus of a non-interactive run.
    """
    sys.argv = ["heretic", *heretic_arguments]
    import heretic.evaluator
    import heretic.main as heretic_main

    study = StudyMeasure(requested=requested, sources=sources)
    heretic_main.Settings = settings_without_tables(
        heretic_main.Settings, PLUGIN_TABLES
    )
    heretic_main.JournalStorage = recording_storage(heretic_main.JournalStorage, study)
    base_evaluator = heretic.evaluator.Evaluator

    def evaluator(settings: Any, model: Any) -> Any:
        measure = study.decide()
        if measure.settings is None:
            return base_evaluator(settings, model)
        return teacher_forced_evaluator(
            base_evaluator, measure.settings, measure.prompts_set_explicitly
        )(settings, model)

    heretic_main.Evaluator = evaluator
    if menus is not None:
        heretic_main.prompt_select = menus.select
        heretic_main.prompt_text = menus.text
        heretic_main.prompt_path = menus.text
        heretic_main.prompt_password = menus.text
        heretic_main.print = menus.filtered_print(heretic_main.print)
    heretic_main.prompt_select = observing_checkpoint_answer(
        heretic_main.prompt_select, study
    )
    heretic_main.main()
