# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The launcher's flows around a study: a continued study keeps its damage
measure (heretic-llm 1.4.0), runs without a terminal answer heretic's menus and
save models through heretic's own saving code (both hosts), the model may come
from `config.toml` or `HERETIC_MODEL` on heretic master, and `--kl-prompts`
replaces the whole prompts table on both hosts.
"""

import json
import os
import pty
import re
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from questionary import Choice

from heretic_teacher_forced_kl.adapters.legacy.study import (
    STUDY_ATTRIBUTE,
    Measure,
    StudyMeasure,
    ignored_values,
    recording_storage,
)
from heretic_teacher_forced_kl.adapters.menus import (
    TRIAL_MENU_EXPLANATION,
    NonInteractiveMenus,
    SavePlan,
    ScriptedQuestionary,
)
from heretic_teacher_forced_kl.cli.launcher.config import effective_settings
from heretic_teacher_forced_kl.cli.launcher.options import parse_arguments
from heretic_teacher_forced_kl.cli.launcher.run import requested_export_strategy
from heretic_teacher_forced_kl.errors import UsageError
from heretic_teacher_forced_kl.names import TEACHER_FORCED_KL_PLUGIN
from heretic_teacher_forced_kl.settings import TeacherForcedKLSettings
from tests.support.repository import environment_with_repository, module_command
from tests.test_launcher import LAUNCHER, write_study_config

#: The line of a run whose standard input is not a terminal.
AUTOMATIC_LINE = (
    "heretic-kl: standard input is not a terminal, so this run is non-interactive"
)


def environment(**variables: str) -> dict[str, str]:
    """The environment of a launcher run: offline, without HERETIC_MODEL unless given."""
    result = environment_with_repository(
        {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    )
    result.pop("HERETIC_MODEL", None)
    result.update(variables)
    return result


def run(
    command: list[str],
    directory: Path,
    timeout: int = 600,
    **variables: str,
) -> subprocess.CompletedProcess[str]:
    """Runs a command in `directory` with standard input that is not a terminal."""
    return subprocess.run(
        command,
        cwd=directory,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env=environment(**variables),
    )


def run_master_double(
    arguments: list[str],
    directory: Path,
    driver: str = "tests.support.launcher_plugin_host_driver",
    **variables: str,
) -> subprocess.CompletedProcess[str]:
    """Runs the launcher against a double of heretic master's `heretic.main`."""
    return run(
        module_command(driver, *arguments),
        directory,
        timeout=300,
        **variables,
    )


def host_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """What the double of heretic master saw (its `HOST` line)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("HOST "))
    return json.loads(line.removeprefix("HOST "))


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The launcher's one-line error, checked to be one line with exit status 2."""
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output[-3000:]
    assert output.startswith("heretic-kl: error: ")
    assert len(output.splitlines()) == 1, output
    return output


# Issue 11 item 2: heretic master with the model only in config.toml or HERETIC_MODEL.


def test_master_runs_with_model_only_in_config(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('model = "owner/configured-model"\n')
    host = host_report(run_master_double(["--kl-tokens", "3"], tmp_path))
    assert host["model"] == "owner/configured-model"
    assert [scorer["plugin"] for scorer in host["scorers"]][
        -1
    ] == TEACHER_FORCED_KL_PLUGIN
    assert host["scorer_tables"]["TeacherForcedKL"] == {"kl_tokens": 3}


def test_master_runs_with_model_only_in_environment(tmp_path: Path) -> None:
    result = run_master_double(
        ["--kl-tokens", "3"], tmp_path, HERETIC_MODEL="owner/environment-model"
    )
    assert host_report(result)["model"] == "owner/environment-model"


def test_master_still_takes_a_trailing_model(tmp_path: Path) -> None:
    host = host_report(run_master_double(["--n-trials", "4", "owner/model"], tmp_path))
    assert host["model"] == "owner/model"
    assert host["n_trials"] == 4


# Issue 11 item 5: --kl-prompts replaces the whole prompts table.


PROMPTS_CONFIG = (
    "[scorer.TeacherForcedKL]\n"
    'prompts = { dataset = "configured/dataset", split = "train[:3]", column = "prompt" }\n'
    "kl_tokens = 4\n"
)


def test_kl_prompts_flag_replaces_the_prompts_table_on_master(tmp_path: Path) -> None:
    prompt_file = tmp_path / "kl.txt"
    prompt_file.write_text("one\ntwo\nthree\nfour\nfive\nsix\n")
    (tmp_path / "config.toml").write_text(PROMPTS_CONFIG)
    host = host_report(
        run_master_double(["--kl-prompts", str(prompt_file), "owner/model"], tmp_path)
    )
    assert host["scorer_tables"]["TeacherForcedKL"] == {
        "prompts": {"dataset": str(prompt_file)},
        "kl_tokens": 4,
    }


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


def test_run_without_terminal_is_non_interactive_and_says_so(tmp_path: Path) -> None:
    result = run_master_double(
        ["owner/model"], tmp_path, "tests.support.launcher_plugin_host_menus_driver"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(AUTOMATIC_LINE)
    assert lines.count(lines[0]) == 1
    # heretic's trial menu was answered instead of ending in an EOFError.
    assert "Pareto front" in result.stdout
    assert "[Trial   2]" in result.stdout and "[Trial   5]" in result.stdout
    assert "EOFError" not in result.stdout + result.stderr


def test_run_with_a_terminal_stays_interactive(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            module_command("tests.support.launcher_plugin_host_driver", "owner/model"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=follower,
            timeout=300,
            env=environment(),
        )
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "non-interactive" not in result.stdout


# Issue 12 item 2: saving models from a non-interactive run (heretic master's menus).


def test_master_save_to_saves_every_pareto_optimal_trial(tmp_path: Path) -> None:
    result = run_master_double(
        ["--save-to", "saved", "owner/model"],
        tmp_path,
        "tests.support.launcher_plugin_host_menus_driver",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for trial in (2, 5):
        saved = json.loads(
            (tmp_path / "saved" / f"trial-{trial}" / "config.json").read_text()
        )
        assert saved == {"trial": trial, "strategy": "merge"}
    assert "After selecting a trial" not in output
    assert "Non-interactive run: saving every Pareto-optimal trial into saved" in output
    assert "saved trial 2, 5 into saved/trial-2, saved/trial-5" in output


def test_master_save_trials_saves_the_chosen_trial_with_heretic_export_strategy(
    tmp_path: Path,
) -> None:
    result = run_master_double(
        [
            "--save-to",
            "saved",
            "--save-trials",
            "5",
            "--export-strategy",
            "adapter",
            "owner/model",
        ],
        tmp_path,
        "tests.support.launcher_plugin_host_menus_driver",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(path.name for path in (tmp_path / "saved").iterdir()) == ["trial-5"]
    saved = json.loads((tmp_path / "saved" / "trial-5" / "config.json").read_text())
    assert saved == {"trial": 5, "strategy": "adapter"}


def test_master_save_trials_off_the_front_fails_after_saving_the_others(
    tmp_path: Path,
) -> None:
    result = run_master_double(
        ["--save-to", "saved", "--save-trials", "4,2", "owner/model"],
        tmp_path,
        "tests.support.launcher_plugin_host_menus_driver",
    )
    assert result.returncode == 1
    assert (
        "--save-trials: trial 4 is not on the Pareto front (trials 2, 5), so not saved."
        in result.stdout
    )
    assert (tmp_path / "saved" / "trial-2" / "config.json").is_file()
    assert not (tmp_path / "saved" / "trial-4").exists()


def test_master_non_interactive_run_continues_a_study_in_the_checkpoint(
    tmp_path: Path,
) -> None:
    (tmp_path / "checkpoint.json").write_text("{}")
    result = run_master_double(
        ["--non-interactive", "owner/model"],
        tmp_path,
        "tests.support.launcher_plugin_host_menus_driver",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "CHECKPOINT 'continue'" in result.stdout
    assert "continuing the study found in the checkpoint" in result.stdout
    # A value given to heretic still wins over the launcher's answer.
    result = run_master_double(
        ["--checkpoint-action", "restart", "owner/model"],
        tmp_path,
        "tests.support.launcher_plugin_host_menus_driver",
    )
    assert "CHECKPOINT 'restart'" in result.stdout


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
    result = run(LAUNCHER + arguments, tmp_path, timeout=120)
    assert message in one_line_error(result)


def test_save_to_below_a_file_stops_before_loading_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("")
    result = run(LAUNCHER + ["--save-to", "notes.txt/out", "owner/model"], tmp_path)
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
        folder = Path(menus.text("Path to the folder:"))
        assert folder == tmp_path / "out" / f"trial-{answers[-1]}"
        folder.mkdir(parents=True)
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
    assert menus.finish() == 0


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


def test_scripted_questionary_answers_like_questionary() -> None:
    menus = NonInteractiveMenus()
    questionary = ScriptedQuestionary(menus)
    offered = [Choice("Continue the previous run", "continue")]
    assert (
        questionary.select("How would you like to proceed?", choices=offered).ask()
        == "continue"
    )
    assert questionary.text("Anything?").unsafe_ask() == ""
    assert questionary.checkbox("Which benchmarks?", []).ask() == []


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
    first = run(LAUNCHER + ["--kl-tokens", "3", model], tmp_path)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-3000:]
    assert first.stdout.startswith(AUTOMATIC_LINE)
    assert "After selecting a trial" not in output
    assert "x 3 tokens x" in output
    front = pareto_trials(first.stdout)
    assert front

    # Continued with other scorer settings: the study's own measure applies, and
    # every Pareto-optimal trial is saved by heretic's saving code.
    second = run(
        LAUNCHER
        + ["--kl-tokens", "4", "--kl-batch-size", "2", "--save-to", "saved", model],
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
    third = run(
        LAUNCHER + ["--save-to", "other", "--save-trials", "99", model], tmp_path
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
    first = run(
        LAUNCHER + ["--scorer", "kl-divergence", "--non-interactive", model], tmp_path
    )
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    assert "teacher-forced" not in first.stdout

    second = run(LAUNCHER + ["--non-interactive", model], tmp_path)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert (
        "Continuing the study with the damage measure saved when it began "
        "(kl-divergence (heretic's first-token KL)); ignoring what differs: "
        "scorer = 'teacher-forced-kl' (the default), kl_tokens = 5 (config.toml)."
    ) in output
    assert "teacher-forced KL divergence" not in output
    assert pareto_trials(second.stdout) == pareto_trials(first.stdout)
