# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
`heretic-kl` on the real heretic master, in process (`cli.main.main`): the
settings heretic sees, real studies run without a terminal, continued,
saved from, and refused under another damage measure, and what the launcher
relies on inside heretic master (`adapters/plugin_host.py`).
"""

import inspect
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import heretic.config
import heretic.main
import optuna
import pytest
import torch
import transformers
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from heretic_teacher_forced_kl.adapters import plugin_host
from heretic_teacher_forced_kl.adapters.checkpoint import checkpoint_file, read_study
from heretic_teacher_forced_kl.cli.main import main
from heretic_teacher_forced_kl.names import BUILT_IN_KL_PLUGIN, TEACHER_FORCED_KL_PLUGIN
from tests.support.repository import environment_with_repository

PROMPTS_DIRECTORY = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "heretic_teacher_forced_kl"
    / "data"
    / "prompts"
)
KEYWORD_RATE = "heretic.scorers.keyword_rate.KeywordRate"


def write_master_study_config(
    directory: Path, extra: str = "", trials: int = 3
) -> None:
    """heretic master's config for a fast CPU study with local prompt files."""
    for name, source in {
        "good.txt": "harmless_directions.txt",
        "bad.txt": "harmful_directions.txt",
        "kl.txt": "harmless_evaluation.txt",
        "refusals.txt": "harmful_evaluation.txt",
    }.items():
        lines = (PROMPTS_DIRECTORY / source).read_text().splitlines()
        (directory / name).write_text("\n".join(lines[:8]) + "\n")
    (directory / "config.toml").write_text(
        'device_map = "cpu"\n'
        'dtypes = ["float32"]\n'
        "batch_size = 8\n"
        "max_response_length = 6\n"
        f"n_trials = {trials}\n"
        "n_startup_trials = 2\n"
        "seed = 1\n"
        'good_prompts = { dataset = "good.txt" }\n'
        'bad_prompts = { dataset = "bad.txt" }\n'
        "[scorer.KeywordRate]\n"
        'prompts = { dataset = "refusals.txt" }\n'
        "[scorer.KLDivergence]\n"
        'prompts = { dataset = "kl.txt" }\n'
        "[scorer.TeacherForcedKL]\n"
        'prompts = { dataset = "kl.txt" }\n' + extra
    )


def launch(
    arguments: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, str]:
    """Runs `heretic-kl` in process without a terminal; returns the status and output."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    capsys.readouterr()
    status = main(arguments)
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def one_line_error(status: int, output: str) -> str:
    """The launcher's one-line error, checked to be alone with exit status 2."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("heretic-kl: error: ")]
    assert status == 2, output[-3000:]
    assert len(errors) == 1, output[-3000:]
    assert "Loading model" not in output
    return errors[0]


def pareto_trials(output: str) -> list[int]:
    """The trial numbers of the Pareto front that a non-interactive run printed."""
    return [int(number) for number in re.findall(r"^\* \[Trial +(\d+)\]", output, re.M)]


def mark_unfinished(checkpoint: Path) -> None:
    """Marks the study in `checkpoint` as interrupted, as heretic does until its last trial."""
    storage = JournalStorage(JournalFileBackend(str(checkpoint)))
    study = optuna.load_study(study_name="heretic", storage=storage)
    study.set_user_attr("finished", False)


class SettingsSeen(Exception):
    """Stops heretic where it would load the model, with the settings it resolved."""

    def __init__(self, settings: Any) -> None:
        super().__init__("stopped before loading the model")
        self.settings = settings


def settings_heretic_sees(
    arguments: list[str],
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str] | None = None,
) -> Any:
    """heretic master's resolved settings of a `heretic-kl` run, stopped before the model loads."""

    def stop(settings: Any) -> None:
        raise SettingsSeen(settings)

    monkeypatch.chdir(directory)
    monkeypatch.delenv("HERETIC_MODEL", raising=False)
    for name, value in (environment or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(heretic.main, "Model", stop)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(SettingsSeen) as seen:
        main(arguments)
    return seen.value.settings


def plugins(settings: Any) -> list[tuple[str, str]]:
    """The plugins and optimization directions of heretic's `scorers`."""
    return [(entry.plugin, entry.optimization) for entry in settings.scorers]


# The settings heretic master sees.


def test_flag_settings_join_the_scorer_table_and_scorer_replaces_kl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.toml").write_text(
        "n_trials = 7\n[scorer.TeacherForcedKL]\nkl_tokens = 4\n"
        "position_weight_decay = 0.5\n"
    )
    settings = settings_heretic_sees(
        ["--kl-tokens", "2", "--n-trials", "5", "some-owner/some-model"],
        tmp_path,
        monkeypatch,
    )
    assert settings.model == "some-owner/some-model"
    assert settings.n_trials == 5
    assert plugins(settings) == [
        (KEYWORD_RATE, "minimize"),
        (TEACHER_FORCED_KL_PLUGIN, "minimize"),
    ]
    expected = {"kl_tokens": 2, "position_weight_decay": 0.5}
    assert settings.model_extra["scorer"]["TeacherForcedKL"] == expected
    # The study saves the table with heretic's settings, so a continued study keeps it.
    saved = json.loads(settings.model_dump_json())
    assert saved["scorer"]["TeacherForcedKL"] == expected
    # Non-interactive: the run ends after the study, but that is not saved with it.
    assert (settings.trial_index, settings.model_action) == (0, "")
    assert "trial_index" not in saved and "model_action" not in saved


def test_configured_scorers_keep_their_directions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorers = [
        {"plugin": BUILT_IN_KL_PLUGIN, "optimization": "none"},
        {"plugin": KEYWORD_RATE, "optimization": "maximize"},
    ]
    settings = settings_heretic_sees(
        ["--scorers", json.dumps(scorers), "owner/model"], tmp_path, monkeypatch
    )
    assert plugins(settings) == [
        (TEACHER_FORCED_KL_PLUGIN, "none"),
        (KEYWORD_RATE, "maximize"),
    ]
    settings = settings_heretic_sees(
        ["--scorer", "kl-divergence", "owner/model"], tmp_path, monkeypatch
    )
    assert plugins(settings)[-1] == (BUILT_IN_KL_PLUGIN, "minimize")


@pytest.mark.parametrize("where", ["config", "environment", "argument"])
def test_model_from_config_environment_or_argument(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = ["--kl-tokens", "3"]
    if where == "config":
        (tmp_path / "config.toml").write_text('model = "owner/configured"\n')
    elif where == "argument":
        arguments.append("owner/configured")
    environment = (
        {"HERETIC_MODEL": "owner/configured"} if where == "environment" else {}
    )
    settings = settings_heretic_sees(arguments, tmp_path, monkeypatch, environment)
    assert settings.model == "owner/configured"
    assert settings.model_extra["scorer"]["TeacherForcedKL"] == {"kl_tokens": 3}


class Terminal(io.StringIO):
    """Standard input that is a terminal."""

    def isatty(self) -> bool:
        return True


def test_run_with_a_terminal_leaves_heretic_its_questions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HERETIC_MODEL", raising=False)

    def stop(settings: Any) -> None:
        raise SettingsSeen(settings)

    monkeypatch.setattr(heretic.main, "Model", stop)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SettingsSeen) as seen:
        main(["--kl-tokens", "2", "owner/model"])
    settings = seen.value.settings
    for name in plugin_host.NOT_SAVED + ("save_directory",):
        assert getattr(settings, name) is None
    assert settings.model_extra["scorer"]["TeacherForcedKL"] == {"kl_tokens": 2}


def test_no_study_in_a_missing_or_empty_checkpoint(tmp_path: Path) -> None:
    assert read_study(tmp_path / "missing.jsonl") is None
    (tmp_path / "empty.jsonl").write_text("")
    assert read_study(tmp_path / "empty.jsonl") is None
    assert checkpoint_file("checkpoints", "owner/model.v1") == Path(
        "checkpoints/owner--model--v1.jsonl"
    )


def test_unreadable_saved_scorer_settings_are_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A study in heretic's checkpoint whose saved table holds a bad kl_tokens.
    monkeypatch.chdir(tmp_path)
    checkpoint = checkpoint_file("checkpoints", "owner/model")
    checkpoint.parent.mkdir()
    study = optuna.create_study(
        storage=JournalStorage(JournalFileBackend(str(checkpoint))),
        study_name="heretic",
        directions=["minimize"],
    )
    saved = {
        "model": "owner/model",
        "scorers": [{"plugin": TEACHER_FORCED_KL_PLUGIN, "optimization": "minimize"}],
        "scorer": {"TeacherForcedKL": {"kl_tokens": 0}},
    }
    study.set_user_attr("settings", json.dumps(saved))
    study.set_user_attr("finished", True)
    status, output = launch(["--non-interactive", "owner/model"], capsys, monkeypatch)
    line = one_line_error(status, output)
    assert "the study in the checkpoint has unreadable scorer settings" in line
    assert "kl_tokens" in line and "--checkpoint-action restart" in line


def test_kl_prompts_flag_replaces_the_whole_prompts_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt_file = tmp_path / "kl.txt"
    prompt_file.write_text("one\ntwo\nthree\n")
    (tmp_path / "config.toml").write_text(
        "[scorer.TeacherForcedKL]\n"
        'prompts = { dataset = "configured/dataset", split = "train[:3]", '
        'column = "prompt" }\nkl_tokens = 4\n'
    )
    settings = settings_heretic_sees(
        ["--kl-prompts", str(prompt_file), "owner/model"], tmp_path, monkeypatch
    )
    assert settings.model_extra["scorer"]["TeacherForcedKL"] == {
        "prompts": {"dataset": str(prompt_file)},
        "kl_tokens": 4,
    }


def test_flag_table_merges_below_the_command_line_and_replaces_config_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["heretic", "--model", "m"])
    (tmp_path / "config.toml").write_text(
        "[scorer.TeacherForcedKL]\nkl_tokens = 4\nbatch_size = 2\n"
    )
    settings_class = plugin_host.host_settings(
        heretic.main.Settings, "TeacherForcedKL", {"kl_tokens": 8}, {}, {}
    )
    settings = settings_class()
    assert settings.model_extra["scorer"]["TeacherForcedKL"] == {
        "kl_tokens": 8,
        "batch_size": 2,
    }


def test_misspelled_table_key_is_one_line_before_heretic_starts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "config.toml").write_text("[scorer.TeacherForcedKL]\nkl_token = 5\n")
    monkeypatch.chdir(tmp_path)
    status, output = launch(["owner/model"], capsys, monkeypatch)
    line = one_line_error(status, output)
    assert "[scorer.TeacherForcedKL] kl_token: Extra inputs are not permitted" in line
    assert "█" not in output  # heretic never started


# What the launcher relies on inside heretic master: fails loudly when heretic changes.


def test_heretic_resumes_and_saves_through_its_settings_class() -> None:
    source = inspect.getsource(heretic.main.run)
    # The one name replaced while heretic runs, and how heretic uses it.
    assert "settings = Settings()" in source
    assert (
        'Settings.model_validate_json(\n                existing_study.user_attrs["settings"]'
        in source
    )
    assert 'study.set_user_attr("settings", settings.model_dump_json())' in source
    # The settings that steer a run without a terminal.
    for name in plugin_host.NOT_SAVED + ("save_directory", "export_strategy"):
        assert name in heretic.main.Settings.model_fields
        assert f"settings.{name}" in source


# Real studies on heretic master.


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a master config for a three-trial study."""
    folder = tmp_path_factory.mktemp("master-study")
    write_master_study_config(folder)
    return folder


@pytest.mark.end_to_end
def test_study_runs_continues_saves_and_refuses_another_measure(
    study_folder: Path,
    tiny_llama_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(study_folder)
    model = str(tiny_llama_path)

    # No terminal: the study runs, the front is printed under heretic's own
    # objective names, and the run ends without asking anything.
    status, output = launch(["--kl-tokens", "3", model], capsys, monkeypatch)
    assert status == 0, output[-3000:]
    assert output.count("Running trial") == 3
    # heretic ran in this process and left it as it found it.
    assert torch.is_grad_enabled()
    assert heretic.main.Settings is heretic.config.Settings
    assert (
        "Pareto front (Keywords against KL divergence (teacher-forced, 3 tokens)):"
        in output
    )
    front = pareto_trials(output)
    assert front
    assert "Non-interactive run: exiting after the study." in output
    assert "EOFError" not in output and "Traceback" not in output
    checkpoint = checkpoint_file("checkpoints", model)
    study = read_study(checkpoint)
    assert study is not None and study.finished
    assert [trial.number for trial in study.front] == front
    # What steers a run is not saved with the study: plain heretic asks again.
    assert "trial_index" not in study.settings
    assert study.settings["scorer"]["TeacherForcedKL"]["kl_tokens"] == 3

    # Continued with other settings: the saved measure applies, said in one line,
    # and every Pareto-optimal trial is saved by heretic's own saving code.
    status, output = launch(
        ["--kl-tokens", "4", "--save-to", "saved", model], capsys, monkeypatch
    )
    assert status == 0, output[-3000:]
    assert "continuing the study found in the checkpoint" in output
    assert "ignoring what differs: kl_tokens = 4 (--kl-tokens)." in output
    assert "Running trial" not in output
    # Saving measures nothing: the KL prompts are not even loaded.
    assert "Loading teacher-forced KL prompts" not in output
    assert pareto_trials(output) == front
    for trial in front:
        folder = study_folder / "saved" / f"trial-{trial}"
        assert (folder / "config.json").is_file()
        assert list(folder.glob("*.safetensors"))
        assert (folder / "tokenizer_config.json").is_file()
    assert not list((study_folder / "saved").glob("*incomplete*"))

    # heretic's export strategy of this run applies to a continued study too.
    status, output = launch(
        ["--save-to", "adapters", "--save-trials", str(front[0])]
        + ["--export-strategy", "adapter", model],
        capsys,
        monkeypatch,
    )
    assert status == 0, output[-3000:]
    folder = study_folder / "adapters" / f"trial-{front[0]}"
    assert (folder / "adapter_config.json").is_file()
    assert not (folder / "config.json").exists()

    # A folder that already holds a model is never written into.
    status, output = launch(
        ["--save-to", "saved", "--save-trials", str(front[0]), model],
        capsys,
        monkeypatch,
    )
    assert "already holds files" in one_line_error(status, output)

    # A save that fails (here: a full disk) is never reported as saved, and
    # leaves no folder behind.
    def full_disk(*arguments: Any, **options: Any) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(transformers.PreTrainedModel, "save_pretrained", full_disk)
        status, output = launch(["--save-to", "full", model], capsys, monkeypatch)
    assert status == 1, output[-3000:]
    assert "No space left on device" in output
    assert f"--save-to: trial {front[0]} not saved:" in output
    assert "saved into" not in output
    assert not (study_folder / "full").exists() or not any(
        (study_folder / "full").iterdir()
    )

    # A trial off the front is reported, with exit status 1.
    status, output = launch(
        ["--save-to", "other", "--save-trials", "99", model], capsys, monkeypatch
    )
    assert status == 1
    assert "--save-trials: trial 99 is not on the Pareto front" in output
    assert not (study_folder / "other" / "trial-99").exists()

    # The study measures teacher-forced KL: continuing it with heretic's
    # first-token KL is refused in one line, saying how to go on.
    status, output = launch(
        ["--scorer", "kl-divergence", "--non-interactive", model], capsys, monkeypatch
    )
    line = one_line_error(status, output)
    assert "begun with --scorer teacher-forced-kl" in line
    assert "--checkpoint-action restart" in line

    # The KL prompt file moved: saving needs no prompts, continuing takes the
    # same prompts from the new place and refuses others.
    shutil.move("kl.txt", "moved.txt")
    status, output = launch(
        ["--save-to", "after-move", "--save-trials", str(front[0]), model],
        capsys,
        monkeypatch,
    )
    assert status == 0, output[-3000:]
    assert (study_folder / "after-move" / f"trial-{front[0]}" / "config.json").is_file()
    # As if the study had been interrupted, so that continuing it measures again.
    mark_unfinished(checkpoint)
    status, output = launch(["--non-interactive", model], capsys, monkeypatch)
    assert "which is gone; give the same prompts" in one_line_error(status, output)
    Path("other.txt").write_text("Something else entirely\n")
    status, output = launch(["--kl-prompts", "other.txt", model], capsys, monkeypatch)
    assert "holds other prompts than 'kl.txt'" in one_line_error(status, output)
    status, output = launch(["--kl-prompts", "moved.txt", model], capsys, monkeypatch)
    assert status == 0, output[-3000:]
    assert "Continuing the study with its KL prompts from 'moved.txt'" in output
    assert "Loading teacher-forced KL prompts from moved.txt" in output
    shutil.move("moved.txt", "kl.txt")


@pytest.mark.end_to_end
def test_study_begun_with_first_token_kl_is_not_continued_with_teacher_forced_kl(
    tmp_path: Path,
    tiny_llama_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_master_study_config(tmp_path, trials=2)
    monkeypatch.chdir(tmp_path)
    model = str(tiny_llama_path)
    status, output = launch(["--scorer", "kl-divergence", model], capsys, monkeypatch)
    assert status == 0, output[-3000:]
    assert "Pareto front (Keywords against KL divergence):" in output
    status, output = launch(["--non-interactive", model], capsys, monkeypatch)
    line = one_line_error(status, output)
    assert "begun with --scorer kl-divergence" in line
    assert "Run with --scorer kl-divergence to continue it" in line


def test_broken_heretic_import_is_one_line(tmp_path: Path) -> None:
    # heretic master with a torchvision built for another torch: transformers'
    # imports fail, and the launcher must not take heretic for 1.4.0.
    broken = tmp_path / "broken" / "torchvision"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n"
    )
    environment = environment_with_repository()
    environment["PYTHONPATH"] = f"{broken.parent}:{environment['PYTHONPATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "heretic_teacher_forced_kl.cli", "owner/model"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, output[-3000:]
    errors = [line for line in output.splitlines() if "heretic-kl: error:" in line]
    assert len(errors) == 1, output[-3000:]
    assert "importing it failed" in errors[0]
    assert "torchvision::nms" in errors[0]
    assert "good_evaluation_prompts" not in output


@pytest.mark.end_to_end
def test_interrupted_study_says_so_and_is_finished_then_saved_by_the_next_run(
    tmp_path: Path,
    tiny_llama_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from heretic_teacher_forced_kl import TeacherForcedKL

    write_master_study_config(tmp_path, trials=3)
    monkeypatch.chdir(tmp_path)
    model = str(tiny_llama_path)
    measure = TeacherForcedKL.get_score
    calls = []

    def interrupted_at_the_second_trial(self: Any, ctx: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return measure(self, ctx)

    with monkeypatch.context() as patch:
        patch.setattr(TeacherForcedKL, "get_score", interrupted_at_the_second_trial)
        status, output = launch([model], capsys, monkeypatch)
    assert status == 0, output[-3000:]
    assert "The study stopped before its last trial" in output
    assert pareto_trials(output) == [1]

    # The next run finishes the study (trials 2 and 3), then saves.
    status, output = launch(
        ["--save-to", "saved", "--save-trials", "1", model], capsys, monkeypatch
    )
    assert status in (0, 1), output[-3000:]
    assert "Running trial 3 of 3" in output
    study = read_study(checkpoint_file("checkpoints", model))
    assert study is not None and study.finished
    if 1 in [trial.number for trial in study.front]:
        assert status == 0
        assert (tmp_path / "saved" / "trial-1" / "config.json").is_file()
    else:
        assert "--save-trials: trial 1 is not on the Pareto front" in output
