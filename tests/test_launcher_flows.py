# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The launcher's flows around a study on heretic-llm 1.4.0: a continued study
keeps its damage measure, runs without a terminal answer heretic's menus and
save models through heretic's own saving code, and `--kl-prompts` replaces the
whole prompts table. The same flows on heretic master are in
`tests/master/test_launcher.py`.
"""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from questionary import Choice

from heretic_teacher_forced_kl.adapters.legacy.menus import (
    TRIAL_MENU_EXPLANATION,
    NonInteractiveMenus,
)
from heretic_teacher_forced_kl.adapters.legacy.study import (
    STUDY_ATTRIBUTE,
    Measure,
    StudyMeasure,
    ignored_values,
    recording_storage,
)
from heretic_teacher_forced_kl.adapters.saving import SavePlan
from heretic_teacher_forced_kl.cli.launcher.config import effective_settings
from heretic_teacher_forced_kl.cli.launcher.options import parse_arguments
from heretic_teacher_forced_kl.cli.launcher.run import (
    is_non_interactive,
    requested_export_strategy,
)
from heretic_teacher_forced_kl.errors import UsageError
from heretic_teacher_forced_kl.settings import TeacherForcedKLSettings
from tests.support.launcher import run_in_process
from tests.test_launcher import write_study_config

#: The line of a run whose standard input is not a terminal.
AUTOMATIC_LINE = (
    "heretic-kl: standard input is not a terminal, so this run is non-interactive"
)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The launcher's one-line error, checked to be one line with exit status 2."""
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output[-3000:]
    assert output.startswith("heretic-kl: error: ")
    assert len(output.splitlines()) == 1, output
    return output


# Issue 11 item 5: --kl-prompts replaces the whole prompts table.


def test_kl_prompts_flag_replaces_the_prompts_table_on_1_4_0(tmp_path: Path) -> None:
    config = {
        "scorer": {
            "TeacherForcedKL": {
                "prompts": {"dataset": "d", "split": "train[:3]", "column": "prompt"}
            }
        }
    }
    settings, explicit = effective_settings(config, {"prompts": {"dataset": "kl.txt"}})
    assert explicit
    assert settings.prompts.dataset == "kl.txt"
    assert settings.prompts.split is None
    assert settings.prompts.column is None


# Issue 12 item 1: without a terminal, the run is non-interactive, and says so.


class Input:
    """Standard input that is or is not a terminal."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def test_run_without_terminal_is_non_interactive_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", Input(terminal=False))
    assert is_non_interactive(parse_arguments(["owner/model"]))
    output = capsys.readouterr().out
    assert output.startswith(AUTOMATIC_LINE)
    assert len(output.strip().splitlines()) == 1
    # In a notebook, 1.4.0's menus read their answers from standard input.
    assert not is_non_interactive(parse_arguments(["owner/model"]), True)


def test_run_with_a_terminal_stays_interactive(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", Input(terminal=True))
    assert not is_non_interactive(parse_arguments(["owner/model"]))
    assert is_non_interactive(parse_arguments(["--non-interactive", "owner/model"]))
    assert is_non_interactive(parse_arguments(["--save-to", "out", "owner/model"]))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--save-trials", "3", "owner/model"],
            "--save-trials: give --save-to DIR too",
        ),
        (
            ["--save-to", "out", "--save-trials", "0", "owner/model"],
            "--save-trials: expected trial numbers as heretic shows them ([Trial N]), "
            "such as 3 or 3,7; got '0'.",
        ),
        (
            ["--save-to", "out", "--save-trials", "three", "owner/model"],
            "got 'three'",
        ),
        (
            ["--save-to", "config.toml", "owner/model"],
            "--save-to: 'config.toml' is a file",
        ),
        (
            ["--save-to", "out", "--trial-index", "0", "owner/model"],
            "--save-to: heretic's --trial-index is set too",
        ),
    ],
)
def test_bad_saving_options_stop_before_loading_a_model(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    (tmp_path / "config.toml").write_text("")
    result = run_in_process(arguments, tmp_path)
    assert message in one_line_error(result)


def test_save_to_below_a_file_stops_before_loading_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("")
    result = run_in_process(["--save-to", "notes.txt/out", "owner/model"], tmp_path)
    assert "--save-to: cannot write to 'notes.txt'" in one_line_error(result)


# The answers to heretic's menus, in the forms of both hosts.


class FrozenTrial:
    """A trial of heretic's trial menu."""

    def __init__(self, index: int) -> None:
        self.user_attrs = {"index": index}


def trial_choices() -> list[Choice]:
    """heretic's trial menu: trials 3 and 1 on the Pareto front, then its two actions."""
    return [
        Choice(
            title="[Trial   3] Refusals:  0/8, KL divergence: 0.0205",
            value=FrozenTrial(3),
        ),
        Choice(
            title="[Trial   1] Refusals:  2/8, KL divergence: 0.0100",
            value=FrozenTrial(1),
        ),
        Choice(title="Run additional trials", value="continue"),
        Choice(title="Exit program", value=""),
    ]


#: heretic 1.4.0's action menu: plain strings and a `Choice` for leaving.
ACTION_CHOICES_1_4_0 = [
    "Save the model to a local folder",
    "Upload the model to Hugging Face",
    "Chat with the model",
    "Benchmark the model",
    Choice(title="Return to the trial selection menu", value=""),
]


def test_menus_save_each_pareto_optimal_trial_through_heretic_menus(
    tmp_path: Path,
) -> None:
    menus = NonInteractiveMenus(save_plan=SavePlan(directory=tmp_path / "out"))
    choices = trial_choices()
    answers = []
    for _ in range(2):
        trial = menus.select("Which trial do you want to use?", choices)
        answers.append(trial.user_attrs["index"])
        assert (
            menus.select(
                "What do you want to do with the decensored model?",
                ACTION_CHOICES_1_4_0,
            )
            == "Save the model to a local folder"
        )
        # heretic saves into a temporary folder beside the target (adapters.saving).
        folder = Path(menus.text("Path to the folder:"))
        assert folder.parent == tmp_path / "out"
        assert folder.name.startswith(f"trial-{answers[-1]}.incomplete-")
        (folder / "config.json").write_text("{}")
        # Back to the trial menu once the trial is saved.
        assert (
            menus.select(
                "What do you want to do with the decensored model?",
                ACTION_CHOICES_1_4_0,
            )
            == ""
        )
    assert answers == [3, 1]
    assert menus.select("Which trial do you want to use?", choices) == ""
    # A folder with a configuration alone is no model: not saved, exit status 1
    # (tests/test_legacy_saving.py saves whole models).
    assert menus.finish() == 1
    assert not (tmp_path / "out" / "trial-3").exists()


EXPORT_CHOICES = [
    Choice(
        title="Merge the abliteration LoRA and export the full model", value="merge"
    ),
    Choice(title="Export the abliteration LoRA only", value="adapter"),
]


def test_menus_choose_merge_unless_heretic_is_told_otherwise() -> None:
    menus = NonInteractiveMenus(save_plan=SavePlan(directory=Path("out")))
    assert (
        menus.select("How do you want to export the model?", EXPORT_CHOICES) == "merge"
    )
    menus = NonInteractiveMenus(
        save_plan=SavePlan(directory=Path("out"), export_strategy="adapter")
    )
    assert (
        menus.select("How do you want to export the model?", EXPORT_CHOICES)
        == "adapter"
    )


@pytest.mark.parametrize(
    ("arguments", "config", "expected"),
    [
        ([], {}, "merge"),
        (["--export-strategy", "adapter", "m"], {}, "adapter"),
        (["--export-strategy=ADAPTER"], {}, "adapter"),
        ([], {"export_strategy": "adapter"}, "adapter"),
    ],
)
def test_save_plan_takes_heretic_export_strategy_of_this_run(
    arguments: list[str], config: dict[str, Any], expected: str
) -> None:
    # A continued study restores its saved settings and asks for the strategy.
    options = parse_arguments(["--save-to", "out", *arguments])
    assert requested_export_strategy(options, config) == expected


def test_menus_report_a_trial_that_heretic_failed_to_save(tmp_path: Path) -> None:
    menus = NonInteractiveMenus(save_plan=SavePlan(directory=tmp_path, trials=(1,)))
    assert menus.select(
        "Which trial do you want to use?", trial_choices()
    ).user_attrs == {"index": 1}
    menus.select(
        "What do you want to do with the decensored model?", ACTION_CHOICES_1_4_0
    )
    # heretic caught an error while saving; the folder holds an old model only.
    folder = tmp_path / "trial-1"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    os.utime(folder / "config.json", (0, 0))
    assert (
        menus.select(
            "What do you want to do with the decensored model?", ACTION_CHOICES_1_4_0
        )
        == ""
    )
    assert menus.select("Which trial do you want to use?", trial_choices()) == ""
    assert menus.finish() == 1


def test_menus_without_save_plan_exit_at_every_menu() -> None:
    menus = NonInteractiveMenus()
    assert menus.select("Which trial do you want to use?", trial_choices()) == ""
    assert menus.select("Some new question of heretic?", ["a", Choice("b", "")]) == ""
    assert menus.text("How many additional trials do you want to run?") == ""
    assert menus.finish() == 0


def test_menus_continue_a_checkpoint_only_where_heretic_offers_it() -> None:
    menus = NonInteractiveMenus()
    offered = [
        Choice("Continue the previous run", "continue"),
        Choice("Exit program", ""),
    ]
    assert menus.select("How would you like to proceed?", offered) == "continue"
    assert menus.select("How would you like to proceed?", [Choice("Exit", "")]) == ""


def test_menus_replace_heretic_trial_menu_explanation() -> None:
    printed: list[Any] = []
    menus = NonInteractiveMenus(
        save_plan=SavePlan(directory=Path("out"), trials=(3, 7))
    )
    host_print = menus.filtered_print(lambda *objects, **_: printed.extend(objects))
    host_print("The following trials resulted. " + TRIAL_MENU_EXPLANATION + "Note.", 5)
    assert printed == [
        "The following trials resulted. Non-interactive run: saving trials 3, 7 into "
        "out, one folder per trial. Note.",
        5,
    ]


# Issue 11 item 1: the damage measure saved with a heretic-llm 1.4.0 study.


def teacher_forced(**settings: Any) -> Measure:
    """A teacher-forced measure with `settings`."""
    return Measure(
        "teacher-forced-kl",
        TeacherForcedKLSettings.model_validate(settings),
        "prompts" in settings,
    )


def test_ignored_values_name_each_differing_value_and_where_it_came_from() -> None:
    saved = teacher_forced(kl_tokens=3)
    requested = teacher_forced(kl_tokens=5, position_weight_decay=0.5, batch_size=4)
    sources = {
        "kl_tokens": "--kl-tokens",
        "position_weight_decay": "config.toml",
        "batch_size": "--kl-batch-size",
    }
    # The batch size does not change the numbers, so it is not ignored.
    assert ignored_values(saved, requested, sources) == [
        "kl_tokens = 5 (--kl-tokens)",
        "position_weight_decay = 0.5 (config.toml)",
    ]


def test_ignored_values_of_another_scorer() -> None:
    saved = Measure("kl-divergence")
    requested = teacher_forced(kl_tokens=5)
    assert ignored_values(saved, requested, {"kl_tokens": "config.toml"}) == [
        "scorer = 'teacher-forced-kl' (the default)",
        "kl_tokens = 5 (config.toml)",
    ]
    assert ignored_values(requested, saved, {"scorer": "--scorer"}) == [
        "scorer = 'kl-divergence' (--scorer)"
    ]


def test_ignored_values_compare_explicit_prompts_whole() -> None:
    saved = teacher_forced(prompts={"dataset": "d", "split": "train"})
    assert ignored_values(saved, teacher_forced(prompts={"dataset": "d"}), {}) == [
        "prompts = {'dataset': 'd'} (the default)"
    ]
    assert ignored_values(saved, teacher_forced(), {}) == [
        "prompts = 'good_evaluation_prompts' (the default)"
    ]


def test_continued_study_keeps_its_measure_and_takes_runtime_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    study = StudyMeasure(
        requested=teacher_forced(kl_tokens=5, batch_size=2, reference_storage="cpu"),
        sources={"kl_tokens": "--kl-tokens"},
    )
    study.observe_studies([optuna_study_with(teacher_forced(kl_tokens=3).record())])
    study.observe_checkpoint_answer("continue")
    effective = study.decide()
    assert effective.settings is not None
    assert effective.settings.kl_tokens == 3
    # How the numbers are computed follows the current run.
    assert effective.settings.batch_size == 2
    assert effective.settings.reference_storage.value == "cpu"
    output = capsys.readouterr().out
    assert "ignoring what differs: kl_tokens = 5 (--kl-tokens)." in output
    assert len(output.strip().splitlines()) == 1


def test_study_begun_with_first_token_kl_stays_so() -> None:
    study = StudyMeasure(requested=teacher_forced(kl_tokens=5))
    study.observe_studies([optuna_study_with(Measure("kl-divergence").record())])
    study.observe_checkpoint_answer("continue")
    assert study.decide() == Measure("kl-divergence")


def test_new_or_restarted_study_uses_the_requested_measure() -> None:
    requested = teacher_forced(kl_tokens=5)
    study = StudyMeasure(requested=requested)
    study.observe_studies([optuna_study_with(teacher_forced(kl_tokens=3).record())])
    study.observe_checkpoint_answer("restart")
    assert study.decide() == requested


def test_study_without_saved_measure_continues_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    requested = teacher_forced(kl_tokens=5)
    study = StudyMeasure(requested=requested)
    study.observe_studies([optuna_study_with(None)])
    study.observe_checkpoint_answer("continue")
    assert study.decide() == requested
    assert "has no saved damage measure" in capsys.readouterr().out


def test_unreadable_saved_measure_is_a_one_line_error() -> None:
    study = StudyMeasure(requested=teacher_forced())
    study.observe_studies(
        [
            optuna_study_with(
                {"scorer": "teacher-forced-kl", "settings": {"kl_tokens": 0}}
            )
        ]
    )
    with pytest.raises(
        UsageError,
        match=r"unreadable \S+ attribute \(kl_tokens: Input should be .*\); delete the checkpoint",
    ):
        study.observe_checkpoint_answer("continue")
    with pytest.raises(UsageError, match=r"unreadable \S+ attribute; delete the"):
        Measure.from_record({"scorer": "first-token"})


class SavedStudy:
    """A study as Optuna's storage lists it, with user attributes."""

    def __init__(self, user_attrs: dict[str, Any]) -> None:
        self.user_attrs = user_attrs


def optuna_study_with(record: Any) -> SavedStudy:
    """A study in heretic's checkpoint whose saved measure is `record` (None: none)."""
    attributes: dict[str, Any] = {"settings": "{}", "finished": True}
    if record is not None:
        attributes[STUDY_ATTRIBUTE] = record
    return SavedStudy(attributes)


def test_storage_saves_the_measure_when_heretic_saves_its_settings(
    tmp_path: Path,
) -> None:
    checkpoint = str(tmp_path / "study.jsonl")
    requested = teacher_forced(kl_tokens=4)
    study = StudyMeasure(requested=requested)
    storage_class = recording_storage(JournalStorage, study)

    storage = storage_class(JournalFileBackend(checkpoint))
    assert storage.get_all_studies() == []
    study.decide()
    created = optuna.create_study(
        storage=storage, study_name="heretic", directions=["minimize"]
    )
    created.set_user_attr("settings", "{}")
    saved = JournalStorage(JournalFileBackend(checkpoint)).get_all_studies()[0]
    assert saved.user_attrs[STUDY_ATTRIBUTE] == requested.record()
    assert Measure.from_record(saved.user_attrs[STUDY_ATTRIBUTE]) == requested

    # A later run finds it, and a later "settings" write does not replace it.
    later = StudyMeasure(requested=teacher_forced(kl_tokens=7))
    later_storage = recording_storage(JournalStorage, later)(
        JournalFileBackend(checkpoint)
    )
    later_storage.get_all_studies()
    later.observe_checkpoint_answer("continue")
    assert later.decide().settings.kl_tokens == 4  # type: ignore[union-attr]
    loaded = optuna.load_study(study_name="heretic", storage=later_storage)
    loaded.set_user_attr("settings", "{}")
    assert loaded.user_attrs[STUDY_ATTRIBUTE] == requested.record()


# Real heretic-llm 1.4.0 runs.


def pareto_trials(output: str) -> list[int]:
    """The trial numbers of the Pareto front that a non-interactive run printed."""
    return [int(number) for number in re.findall(r"^\* \[Trial +(\d+)\]", output, re.M)]


@pytest.mark.end_to_end
def test_1_4_0_study_keeps_its_measure_and_saves_models_when_continued(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    write_study_config(tmp_path, trials=2)
    model = str(tiny_llama_path)

    # No terminal: non-interactive, automatically.
    first = run_in_process(["--kl-tokens", "3", model], tmp_path)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-3000:]
    assert first.stdout.startswith(AUTOMATIC_LINE)
    assert "After selecting a trial" not in output
    assert "x 3 tokens x" in output
    front = pareto_trials(first.stdout)
    assert front

    # Continued with other scorer settings: the study's own measure applies, and
    # every Pareto-optimal trial is saved by heretic's saving code.
    second = run_in_process(
        ["--kl-tokens", "4", "--kl-batch-size", "2", "--save-to", "saved", model],
        tmp_path,
    )
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert "continuing the study found in the checkpoint" in output
    assert "ignoring what differs: kl_tokens = 4 (--kl-tokens)." in output, output[
        -3000:
    ]
    # Saving from the finished study measures nothing: no reference is built.
    assert "x 4 tokens x" not in output
    assert "reference continuations" not in output
    assert "Running trial" not in output
    assert pareto_trials(second.stdout) == front
    for trial in front:
        folder = tmp_path / "saved" / f"trial-{trial}"
        assert (folder / "config.json").is_file()
        assert list(folder.glob("*.safetensors"))
        assert (folder / "tokenizer_config.json").is_file()

    # A trial that is not on the Pareto front is reported, with exit status 1.
    third = run_in_process(
        ["--save-to", "other", "--save-trials", "99", model], tmp_path
    )
    assert third.returncode == 1
    assert "--save-trials: trial 99 is not on the Pareto front" in third.stdout
    assert not (tmp_path / "other").exists()


@pytest.mark.end_to_end
def test_1_4_0_study_begun_with_first_token_kl_stays_so(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    write_study_config(
        tmp_path, "\n[scorer.TeacherForcedKL]\nkl_tokens = 5\n", trials=2
    )
    model = str(tiny_llama_path)
    first = run_in_process(
        ["--scorer", "kl-divergence", "--non-interactive", model], tmp_path
    )
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    assert "teacher-forced" not in first.stdout

    second = run_in_process(["--non-interactive", model], tmp_path)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert (
        "Continuing the study with the damage measure saved when it began "
        "(kl-divergence (heretic's first-token KL)); ignoring what differs: "
        "scorer = 'teacher-forced-kl' (the default), kl_tokens = 5 (config.toml)."
    ) in output
    assert "teacher-forced KL divergence" not in output
    assert pareto_trials(second.stdout) == pareto_trials(first.stdout)
