# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The in-loop study's state: small JSON files, each written atomically.

Every finished step of the in-loop study (`in_loop.py`) is recorded in a JSON
file under `<output folder>/state/`: one file per finished heretic study
(its trials, as heretic recorded them), one per study for the re-measured KL
values and one per study for the damage measurements, which grow by one trial
at a time. A file is written to a temporary name and then renamed over the
old one (`os.replace`), so that a run killed at any moment leaves either the
old or the new file, never a truncated one, and a restart resumes from the
last finished trial.
"""

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomically(path: Path, value: Any) -> None:
    """Writes `value` as JSON to `path` through a temporary file and `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as file:
        json.dump(value, file, indent=1, sort_keys=False)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def read_json(path: Path) -> Any | None:
    """The JSON value in `path`, or None when the file does not exist."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as file:
        return json.load(file)


def study_key(arm: str, seed: int) -> str:
    """The name of one study in file names and tables: the arm and the seed."""
    return f"{arm}-seed-{seed}"


class StudyState:
    """The state files of the whole in-loop study, under one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def run_path(self) -> Path:
        """The run's configuration and its sessions (start and end times)."""
        return self.folder / "run.json"

    def references_path(self) -> Path:
        """The original model's damage references (questions kept, held-out NLL)."""
        return self.folder / "references.json"

    def study_path(self, arm: str, seed: int) -> Path:
        """A finished heretic study: its trials as heretic recorded them."""
        return self.folder / f"study-{study_key(arm, seed)}.json"

    def kl_path(self, arm: str, seed: int) -> Path:
        """The re-measured first-token and teacher-forced KL of a study's trials."""
        return self.folder / f"kl-{study_key(arm, seed)}.json"

    def damage_path(self, arm: str, seed: int) -> Path:
        """The damage measurements of a study's selected trials."""
        return self.folder / f"damage-{study_key(arm, seed)}.json"

    def read_study(self, arm: str, seed: int) -> dict[str, Any] | None:
        """A finished study's record, or None when the study has not finished."""
        value: dict[str, Any] | None = read_json(self.study_path(arm, seed))
        return value

    def read_kl(self, arm: str, seed: int) -> dict[str, Any]:
        """The KL measurements of a study so far (an empty record when none)."""
        value: dict[str, Any] | None = read_json(self.kl_path(arm, seed))
        return value if value is not None else {"trials": {}}

    def read_damage(self, arm: str, seed: int) -> dict[str, Any]:
        """The damage measurements of a study so far (an empty record when none)."""
        value: dict[str, Any] | None = read_json(self.damage_path(arm, seed))
        return value if value is not None else {"trials": {}}

    def unfinished_parts(self, arm: str, seed: int) -> dict[str, str]:
        """
        What of one study is not finished yet, by part ("study", "kl",
        "damage"), each with a short description; empty when the study and
        every measurement it needs are done.
        """
        study = self.read_study(arm, seed)
        if study is None:
            return {"study": "heretic study"}
        parts: dict[str, str] = {}
        kl = self.read_kl(arm, seed)["trials"]
        if len(kl) != len(study["trials"]):
            parts["kl"] = f"KL of {len(study['trials']) - len(kl)} trials"
        damage = self.read_damage(arm, seed)
        selected = damage.get("selected")
        if selected is None:
            parts["damage"] = "damage not started"
        else:
            missing = [
                trial for trial in selected if str(trial) not in damage["trials"]
            ]
            if missing:
                parts["damage"] = f"damage of {len(missing)} trials"
        return parts
