# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Issue 19 item 3 on heretic-llm 1.4.0: a study whose KL prompt file moved.
Saving from a finished study needs no KL prompts; continuing one accepts the
same prompts from another path (checked by content) and otherwise says in one
line what differs and how to continue.
"""

import io
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from heretic_teacher_forced_kl.adapters.legacy.study import (
    STUDY_ATTRIBUTE,
    Measure,
    StudyMeasure,
)
from heretic_teacher_forced_kl.adapters.saving import saved_model_problem
from heretic_teacher_forced_kl.cli.main import main
from heretic_teacher_forced_kl.errors import UsageError
from heretic_teacher_forced_kl.settings import TeacherForcedKLSettings
from tests.test_launcher import teacher_forced_values, write_study_config

PROMPTS = "How do tides work?\nName three prime numbers.\n"


class SavedStudy:
    """A study as Optuna's storage lists it, with user attributes."""

    def __init__(self, record: dict[str, Any], finished: bool) -> None:
        self.user_attrs = {"settings": "{}", "finished": finished}
        self.user_attrs[STUDY_ATTRIBUTE] = record


def measure_of(dataset: str) -> Measure:
    """A teacher-forced measure with the prompt file `dataset`."""
    settings = TeacherForcedKLSettings.model_validate({"prompts": {"dataset": dataset}})
    return Measure("teacher-forced-kl", settings, True)


def continued(
    saved: Measure, requested: Measure, finished: bool = False
) -> StudyMeasure:
    """A run that continues a study saved with `saved`, asking for `requested`."""
    study = StudyMeasure(requested=requested)
    study.observe_studies([SavedStudy(saved.record(), finished)])
    return study


def test_moved_prompt_file_is_found_by_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kl.txt").write_text(PROMPTS)
    saved = measure_of(str(tmp_path / "kl.txt"))
    assert saved.record()["prompts_sha256"]
    record_saved = Measure.from_record(saved.record())
    (tmp_path / "kl.txt").rename(tmp_path / "kl-old.txt")

    study = continued(record_saved, measure_of(str(tmp_path / "kl-old.txt")))
    study.observe_checkpoint_answer("continue")
    effective = study.decide()
    assert effective.settings is not None
    assert effective.settings.prompts.dataset == str(tmp_path / "kl-old.txt")
    assert effective.prompts_problem is None
    output = capsys.readouterr().out
    assert "are now at" in output and "(the same content" in output
    assert "ignoring what differs" not in output


def test_missing_or_other_prompts_stop_a_study_with_trials_to_run(
    tmp_path: Path,
) -> None:
    (tmp_path / "kl.txt").write_text(PROMPTS)
    saved = Measure.from_record(measure_of(str(tmp_path / "kl.txt")).record())
    (tmp_path / "kl.txt").unlink()
    (tmp_path / "other.txt").write_text("Another prompt.\n")

    study = continued(saved, Measure("teacher-forced-kl", TeacherForcedKLSettings()))
    with pytest.raises(UsageError) as missing:
        study.observe_checkpoint_answer("continue")
    assert str(missing.value).startswith(
        f"the KL prompts of the study in the checkpoint, {tmp_path / 'kl.txt'}, are "
        "missing (SHA-256 "
    )
    assert "pass --kl-prompts with the path of the same prompts" in str(missing.value)
    assert "\n" not in str(missing.value)

    study = continued(saved, measure_of(str(tmp_path / "other.txt")))
    with pytest.raises(UsageError, match=r"other\.txt holds other prompts\. To"):
        study.observe_checkpoint_answer("continue")

    # A prompt file edited in place is not the study's either.
    (tmp_path / "kl.txt").write_text(PROMPTS + "One more.\n")
    study = continued(saved, Measure("teacher-forced-kl", TeacherForcedKLSettings()))
    with pytest.raises(UsageError, match=r"kl\.txt, are changed since"):
        study.observe_checkpoint_answer("continue")


def test_finished_study_continues_without_its_prompts(tmp_path: Path) -> None:
    (tmp_path / "kl.txt").write_text(PROMPTS)
    saved = Measure.from_record(measure_of(str(tmp_path / "kl.txt")).record())
    (tmp_path / "kl.txt").unlink()
    study = continued(saved, Measure("kl-divergence"), finished=True)
    study.observe_checkpoint_answer("continue")
    assert study.continues_finished_study
    effective = study.decide()
    assert effective.prompts_problem is not None
    assert effective.settings is not None


def checkpoint_studies(folder: Path) -> list[Any]:
    """The studies in the 1.4.0 checkpoint of `folder`."""
    (checkpoint,) = (folder / "checkpoints").glob("*.jsonl")
    storage = JournalStorage(JournalFileBackend(str(checkpoint)))
    return [
        optuna.load_study(study_name=summary.study_name, storage=storage)
        for summary in storage.get_all_studies()
    ]


@pytest.mark.end_to_end
def test_1_4_0_study_whose_prompt_file_moved(
    tmp_path: Path,
    tiny_llama_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HERETIC_MODEL", raising=False)
    write_study_config(tmp_path, trials=2)
    (tmp_path / "kl.txt").write_text(PROMPTS)
    model = str(tiny_llama_path)
    assert main(["--non-interactive", "--kl-prompts", "kl.txt", model]) == 0
    capsys.readouterr()
    (tmp_path / "kl.txt").rename(tmp_path / "kl-old.txt")

    # Saving from the finished study needs no KL prompts.
    assert main(["--save-to", "saved", model]) == 0
    output = capsys.readouterr().out
    assert "Loading teacher-forced KL prompts" not in output
    (trial,) = [path for path in (tmp_path / "saved").iterdir()][:1]
    assert saved_model_problem(trial) is None

    # The study with trials still to run (heretic's "finished" turned off).
    for study in checkpoint_studies(tmp_path):
        study.set_user_attr("finished", False)

    # Without the prompts: one line before the model loads, saying how to continue.
    assert main(["--non-interactive", model]) == 2
    output = capsys.readouterr().out
    assert "heretic-kl: error: the KL prompts of the study in the checkpoint, " in (
        output
    )
    assert "kl.txt, are missing" in output
    assert "Loading model" not in output

    # Other prompts at the new path: one line.
    (tmp_path / "other.txt").write_text("Another prompt.\n")
    assert main(["--non-interactive", "--kl-prompts", "other.txt", model]) == 2
    assert "other.txt holds other prompts" in capsys.readouterr().out

    # The same prompts at the new path: the study continues with them.
    assert main(["--non-interactive", "--kl-prompts", "kl-old.txt", model]) == 0
    output = capsys.readouterr().out
    assert "The study's KL prompts kl.txt are now at kl-old.txt" in output
    assert "Loading teacher-forced KL prompts from kl-old.txt" in output


@pytest.mark.end_to_end
def test_1_4_0_more_trials_of_a_finished_study_measure_against_the_original(
    tmp_path: Path,
    tiny_llama_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HERETIC_MODEL", raising=False)
    write_study_config(tmp_path, trials=2)
    model = str(tiny_llama_path)
    assert main(["--non-interactive", "--kl-tokens", "3", model]) == 0
    front = capsys.readouterr().out.count("* [Trial")
    assert front > 0

    # In a notebook, 1.4.0's menus read numbered answers from standard input:
    # show the results, run 1 additional trial, then the answers run out.
    monkeypatch.setenv("COLAB_GPU", "1")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"1\n{front + 1}\n1\n"))
    with pytest.raises(EOFError):
        main(["--kl-tokens", "3", model])
    output = capsys.readouterr().out
    assert "Starting teacher-forced KL divergence for the additional trials" in output
    (value,) = teacher_forced_values(output)
    # A reference built from the abliterated model would give exactly 0.
    assert value > 0
