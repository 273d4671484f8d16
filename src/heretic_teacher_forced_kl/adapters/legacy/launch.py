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
`NonInteractiveMenus`. Every name it replaces is restored when 1.4.0 returns,
so that the launcher can run in the process of its caller (the tests).
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...names import PLUGIN_TABLES
from ..settings_sources import settings_without_tables
from .evaluator import teacher_forced_evaluator
from .menus import NonInteractiveMenus
from .study import (
    Measure,
    StudyMeasure,
    observing_checkpoint_answer,
    recording_storage,
)

#: The names of 1.4.0's `heretic.main` that the launcher replaces while it runs.
REPLACED_NAMES = (
    "Settings",
    "JournalStorage",
    "Evaluator",
    "prompt_select",
    "prompt_text",
    "prompt_path",
    "prompt_password",
    "print",
)

#: The variables by which 1.4.0 recognises a notebook, where its menus read
#: numbered answers from standard input instead of needing a terminal.
NOTEBOOK_VARIABLES = ("COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE")


def menus_read_standard_input() -> bool:
    """Whether 1.4.0's menus read numbered answers from standard input (in a notebook)."""
    return any(os.getenv(name) for name in NOTEBOOK_VARIABLES)


@contextmanager
def names_restored(module: Any, names: tuple[str, ...]) -> Iterator[None]:
    """
    Restores the attributes `names` of `module`, `sys.argv` and torch's
    gradient mode (which 1.4.0 turns off for good) on leaving.
    """
    import torch

    saved = {name: getattr(module, name) for name in names}
    arguments = list(sys.argv)
    gradients = torch.is_grad_enabled()
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
        sys.argv = arguments
        torch.set_grad_enabled(gradients)


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
    import heretic.evaluator
    import heretic.main as heretic_main

    with names_restored(heretic_main, REPLACED_NAMES):
        try:
            run_with_replaced_names(
                heretic_main,
                heretic.evaluator.Evaluator,
                heretic_arguments,
                requested,
                sources,
                menus,
            )
        finally:
            if menus is not None:
                # A save that 1.4.0 never finished (an error that it did not
                # catch) leaves no folder that looks like a saved model.
                menus.abandon_unfinished()


def run_with_replaced_names(
    heretic_main: Any,
    base_evaluator: Any,
    heretic_arguments: list[str],
    requested: Measure,
    sources: dict[str, str],
    menus: NonInteractiveMenus | None,
) -> None:
    """Runs 1.4.0's `main` with the launcher's evaluator, storage and menus."""
    sys.argv = ["heretic", *heretic_arguments]
    study = StudyMeasure(requested=requested, sources=sources)
    heretic_main.Settings = settings_without_tables(
        heretic_main.Settings, PLUGIN_TABLES
    )
    heretic_main.JournalStorage = recording_storage(heretic_main.JournalStorage, study)

    def evaluator(settings: Any, model: Any) -> Any:
        measure = study.decide()
        if measure.settings is None:
            return base_evaluator(settings, model)
        return teacher_forced_evaluator(
            base_evaluator,
            measure.settings,
            measure.prompts_set_explicitly,
            deferred=study.continues_finished_study,
            prompts_problem=measure.prompts_problem,
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
