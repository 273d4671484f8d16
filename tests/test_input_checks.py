# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Bad KL prompt files and model folders stop `heretic-kl` with one line and exit
status 2 before any model loads, and stop the plugin at `init`.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from heretic_teacher_forced_kl.cli.launcher.heretic_settings import (
    check_heretic_settings,
)
from heretic_teacher_forced_kl.cli.main import main
from heretic_teacher_forced_kl.errors import UsageError
from heretic_teacher_forced_kl.prompts import check_prompt_file

LAUNCHER = [sys.executable, "-m", "heretic_teacher_forced_kl.cli"]


def write_bad_prompt_files(directory: Path) -> None:
    """Writes a prompt file of every bad kind, and a good one, into `directory`."""
    (directory / "empty.txt").write_bytes(b"")
    (directory / "blank.txt").write_text("\n   \n\t\n")
    (directory / "latin1.txt").write_bytes("Qu'est-ce qu'un café ?\n".encode("latin-1"))
    (directory / "good.txt").write_text("Hi\nName a fruit.\n")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("empty.txt", "'{path}' is empty"),
        ("blank.txt", "'{path}' holds only blank lines"),
        ("latin1.txt", "'{path}' is not UTF-8 text (byte 0xe9 at offset 19)"),
        ("missing.txt", "no file at '{path}'"),
    ],
)
def test_bad_prompt_file_is_one_line_naming_the_setting(
    tmp_path: Path, name: str, problem: str
) -> None:
    write_bad_prompt_files(tmp_path)
    path = str(tmp_path / name)
    with pytest.raises(ValueError) as error:
        check_prompt_file(path, "--kl-prompts")
    assert str(error.value).startswith(f"--kl-prompts: {problem.format(path=path)}")
    assert "\n" not in str(error.value)


def test_good_prompt_files_and_dataset_ids_pass(tmp_path: Path) -> None:
    write_bad_prompt_files(tmp_path)
    check_prompt_file(str(tmp_path / "good.txt"), "--kl-prompts")
    # A file that heretic reads as text, whatever its suffix.
    (tmp_path / "prompts").write_text("Hi\n")
    check_prompt_file(str(tmp_path / "prompts"), "--kl-prompts")
    # Dataset IDs and folders are for the loader to check.
    check_prompt_file("mlabonne/harmless_alpaca", "--kl-prompts")
    check_prompt_file(str(tmp_path), "--kl-prompts")


def launcher_error(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Runs `heretic-kl` in this process and returns its exit status and output."""
    status = main(arguments)
    captured = capsys.readouterr()
    return status, (captured.out + captured.err).strip()


@pytest.fixture
def study_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with prompt files of every bad kind."""
    write_bad_prompt_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HERETIC_MODEL", raising=False)
    monkeypatch.delenv("HERETIC_GOOD_EVALUATION_PROMPTS", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("arguments", "config", "message"),
    [
        (
            ["--kl-prompts", "empty.txt"],
            "",
            "--kl-prompts: 'empty.txt' is empty;",
        ),
        (
            ["--kl-prompts", "latin1.txt"],
            "",
            "--kl-prompts: 'latin1.txt' is not UTF-8 text",
        ),
        (
            [],
            '[scorer.TeacherForcedKL]\nprompts = { dataset = "blank.txt" }\n',
            "config.toml [scorer.TeacherForcedKL] prompts: 'blank.txt' holds only blank lines;",
        ),
        (
            [],
            'good_evaluation_prompts = { dataset = "empty.txt" }\n',
            "good_evaluation_prompts (heretic-llm 1.4.0's KL prompts unless "
            "[scorer.TeacherForcedKL] prompts is set): 'empty.txt' is empty;",
        ),
        (
            ["--good-evaluation-prompts.dataset", "blank.txt"],
            "",
            "good_evaluation_prompts (heretic-llm 1.4.0's KL prompts unless "
            "[scorer.TeacherForcedKL] prompts is set): 'blank.txt' holds only blank lines;",
        ),
        (
            ["--good-evaluation-prompts.dataset", "missing.txt"],
            "",
            "good_evaluation_prompts (heretic-llm 1.4.0's KL prompts unless "
            "[scorer.TeacherForcedKL] prompts is set): no file at 'missing.txt'",
        ),
    ],
)
def test_launcher_checks_the_kl_prompt_file_before_loading_the_model(
    study_folder: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    config: str,
    message: str,
) -> None:
    (study_folder / "config.toml").write_text(config)
    status, output = launcher_error([*arguments, "owner/model"], capsys)
    assert status == 2
    assert output.startswith(f"heretic-kl: error: {message}")
    assert len(output.splitlines()) == 1


def test_explicit_kl_prompts_replace_a_bad_default(
    study_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bad good_evaluation_prompts are not the KL prompts then: no error here.
    (study_folder / "config.toml").write_text(
        'good_evaluation_prompts = { dataset = "empty.txt" }\n'
        '[scorer.TeacherForcedKL]\nprompts = { dataset = "good.txt" }\n'
    )
    from heretic_teacher_forced_kl.cli.launcher.config import (
        effective_settings,
        read_config_file,
    )
    from heretic_teacher_forced_kl.cli.launcher.prompt_files import (
        check_kl_prompt_file,
    )

    settings, explicit = effective_settings(read_config_file(), {})
    check_kl_prompt_file(
        settings,
        explicit,
        {},
        check_heretic_settings(["owner/model"]).good_evaluation_prompts,
    )


def test_good_evaluation_prompts_follow_heretics_sources(
    study_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (study_folder / "config.toml").write_text(
        'good_evaluation_prompts = { dataset = "from-config.txt" }\n'
        "[scorer.TeacherForcedKL]\nkl_tokens = 2\n"
    )

    def good_evaluation_prompts(arguments: list[str]) -> str:
        return check_heretic_settings(arguments).good_evaluation_prompts.dataset

    assert good_evaluation_prompts(["m"]) == "from-config.txt"
    monkeypatch.setenv(
        "HERETIC_GOOD_EVALUATION_PROMPTS", '{"dataset": "from-environment.txt"}'
    )
    assert good_evaluation_prompts(["m"]) == "from-environment.txt"
    assert (
        good_evaluation_prompts(
            ["--good-evaluation-prompts.dataset", "from-flag.txt", "m"]
        )
        == "from-flag.txt"
    )
    # What heretic itself would reject is one line before the run.
    with pytest.raises(UsageError, match="no-such-flag"):
        check_heretic_settings(["--no-such-flag", "m"])
    # Another mode than a study: heretic checks its own settings then.
    assert check_heretic_settings(["--reproduce", "x.json"]) is None
    os.remove("config.toml")
    monkeypatch.delenv("HERETIC_GOOD_EVALUATION_PROMPTS")
    assert good_evaluation_prompts(["m"]) == "mlabonne/harmless_alpaca"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["./adapter"],
            "MODEL: './adapter' holds no config.json (it is a LoRA adapter folder);",
        ),
        (["./empty-folder"], "MODEL: './empty-folder' holds no config.json;"),
        (["--model", "good.txt"], "MODEL: 'good.txt' is a file; give a model folder"),
        (
            ["--evaluate-model", "./empty-folder", "owner/model"],
            "--evaluate-model: './empty-folder' holds no config.json;",
        ),
    ],
)
def test_launcher_checks_model_folders(
    study_folder: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    (study_folder / "adapter").mkdir()
    (study_folder / "adapter" / "adapter_config.json").write_text("{}")
    (study_folder / "empty-folder").mkdir()
    status, output = launcher_error(arguments, capsys)
    assert status == 2
    assert output.startswith(f"heretic-kl: error: {message}")
    assert len(output.splitlines()) == 1


def test_bad_prompt_file_typed_as_a_user_would(tmp_path: Path) -> None:
    write_bad_prompt_files(tmp_path)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [*LAUNCHER, "--kl-prompts", "blank.txt", "owner/model"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        env=environment,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2
    assert output == (
        "heretic-kl: error: --kl-prompts: 'blank.txt' holds only blank lines; "
        "give a UTF-8 text file with one prompt per line."
    )
