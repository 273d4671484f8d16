# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
heretic master's study checkpoint, read rather than driven.

heretic keeps each study in an Optuna journal file in `study_checkpoint_dir`,
named after the model, with its settings (`model_dump_json`) as the study's
user attribute "settings", a "finished" flag, and for every trial its number
as heretic shows it (user attribute "index") and its scores (user attribute
"scores": name, score and baseline per scorer). heretic prints its Pareto
front only as the choices of a terminal menu; the launcher reads the front
from here instead, sorted and titled as heretic's menu shows it, so that a run
without a terminal can print it and choose trials by heretic's `trial_index`
(an index into that sorted front). None of this is a promised interface of
heretic: the tests against the real heretic master check every part of it.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The study user attribute that holds heretic's settings as JSON.
SETTINGS_ATTRIBUTE = "settings"


def checkpoint_file(study_checkpoint_dir: str, model: str) -> Path:
    """The journal file in which heretic master keeps the study of `model`."""
    name = "".join(
        character if (character.isalnum() or character in "_-") else "--"
        for character in model
    )
    return Path(study_checkpoint_dir) / f"{name}.jsonl"


@dataclass(frozen=True)
class FrontTrial:
    """A trial of the Pareto front: its number as heretic shows it, and its menu title."""

    number: int
    title: str


@dataclass(frozen=True)
class Study:
    """What the launcher reads from a study in heretic master's checkpoint."""

    #: heretic's settings as saved with the study (parsed JSON).
    settings: dict[str, Any]

    #: Whether heretic ran every trial it was asked for.
    finished: bool

    #: The names of the objectives (the optimized scorers' names), in heretic's order.
    objective_names: list[str]

    #: The Pareto front, sorted as heretic's trial menu sorts it.
    front: list[FrontTrial]

    def index_of(self, number: int) -> int:
        """heretic's `trial_index` for trial `number` (its position in the sorted front)."""
        return [trial.number for trial in self.front].index(number)


def read_study(path: Path) -> Study | None:
    """The study in the journal at `path`, or None when there is none."""
    if not path.is_file() or os.path.getsize(path) == 0:
        return None
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(
        JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    )
    summaries = storage.get_all_studies()
    if not summaries:
        return None
    summary = summaries[0]
    settings = json.loads(summary.user_attrs.get(SETTINGS_ATTRIBUTE) or "{}")
    optimized = [
        scorer.get("optimization") != "none" for scorer in settings.get("scorers", [])
    ]
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    completed = [trial for trial in study.trials if trial.state == TrialState.COMPLETE]
    objective_names: list[str] = []
    if completed:
        records = completed[0].user_attrs.get("scores", [])
        objective_names = [
            record["name"]
            for record, is_objective in zip(records, optimized, strict=False)
            if is_objective
        ]
    front = []
    if completed:

        def value(trial: Any, name: str) -> Any:
            return next(
                (
                    record["score"]["value"]
                    for record in trial.user_attrs["scores"]
                    if record["name"] == name
                ),
                None,
            )

        best = sorted(
            study.best_trials,
            key=lambda trial: tuple(value(trial, name) for name in objective_names),
        )
        front = [
            FrontTrial(
                number=int(trial.user_attrs["index"]),
                title=f"[Trial {trial.user_attrs['index']:>3}] "
                + ", ".join(
                    f"{record['name']}: {record['score']['rich_display']}"
                    for record in trial.user_attrs["scores"]
                ),
            )
            for trial in best
        ]
    return Study(
        settings=settings,
        finished=bool(summary.user_attrs.get("finished")),
        objective_names=objective_names,
        front=front,
    )
