# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Bad input a new user meets first: each case is one line and exit status 2,
before any model loads wherever it can be checked then (issue 19). Every test
calls `heretic-kl` in this process.
"""

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from heretic_teacher_forced_kl import TeacherForcedKL
from heretic_teacher_forced_kl.adapters.host import load_scorer_prompts
from heretic_teacher_forced_kl.cli.launcher.scorers import current_scorers
from heretic_teacher_forced_kl.cli.main import main
from heretic_teacher_forced_kl.errors import UsageError
from heretic_teacher_forced_kl.settings import TeacherForcedKLSettings
from tests.support.repository import environment_with_repository, module_command
from tests.test_launcher import write_study_config

#: The line that starts every error of `heretic-kl`.
ERROR = "heretic-kl: error: "


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a good prompt file, without heretic's variables."""
    (tmp_path / "good.txt").write_text("Hi\nName a fruit.\n")
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("HERETIC_"):
            monkeypatch.delenv(name)
    return tmp_path


def run(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Runs `heretic-kl` in this process; returns its exit status and output."""
    status = main(arguments)
    captured = capsys.readouterr()
    return status, (captured.out + captured.err).strip()


def assert_one_line_error(
    arguments: list[str], capsys: pytest.CaptureFixture[str], message: str
) -> str:
    """Asserts that `heretic-kl arguments` stops with one line starting with `message`."""
    status, output = run(arguments, capsys)
    assert status == 2, output
    assert output.startswith(ERROR + message), output
    assert len(output.splitlines()) == 1, output
    return output


# Misspelled keys inside the prompts table (issue 19, item 4).


def test_misspelled_key_in_the_config_prompts_table_is_named(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "config.toml").write_text(
        '[scorer.TeacherForcedKL]\nprompts = { dataset = "good.txt", splt = "[:1]" }\n'
    )
    assert_one_line_error(
        ["owner/model"],
        capsys,
        "config.toml [scorer.TeacherForcedKL] prompts.splt: Extra inputs are not "
        "permitted (got '[:1]')",
    )


def test_misspelled_key_in_kl_prompts_is_named(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_line_error(
        ["--kl-prompts", '{"dataset": "good.txt", "splt": "[:1]"}', "owner/model"],
        capsys,
        "--kl-prompts key 'splt': Extra inputs are not permitted (got '[:1]')",
    )


def test_misspelled_key_in_compare_prompts_is_named(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_line_error(
        ["compare", "a", "b", "--prompts", '{"dataset": "good.txt", "splt": "[:1]"}'],
        capsys,
        "--prompts: splt: Extra inputs are not permitted (got '[:1]')",
    )


def test_scorer_validation_names_a_misspelled_key_inside_the_prompts() -> None:
    # heretic master keeps only the top-level keys that the settings model knows
    # and hands the prompts table over whole: the settings model checks inside it.
    with pytest.raises(UsageError) as error:
        TeacherForcedKL.validate_settings(
            {"prompts": {"dataset": "good.txt", "splt": "[:1]"}}
        )
    assert str(error.value) == (
        "config.toml [scorer.TeacherForcedKL] prompts.splt: Extra inputs are not "
        "permitted (got '[:1]') (heretic-kl --print-config describes every setting)."
    )


# Tracebacks before the model loads.


def test_scorer_as_a_string_in_config_is_one_line(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "config.toml").write_text('scorer = "x"\n')
    assert_one_line_error(
        ["owner/model"],
        capsys,
        "config.toml: scorer must be a table of scorer settings tables",
    )


def test_config_that_is_not_utf8_is_one_line(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "config.toml").write_bytes('model = "café"\n'.encode("latin-1"))
    assert_one_line_error(
        [],
        capsys,
        "config.toml: not UTF-8 text (byte 0xe9 at offset 12); save it as UTF-8",
    )


@pytest.mark.parametrize(
    ("source", "scorers"),
    [
        ("config.toml scorers", ["oops"]),
        ("config.toml scorers", [{"optimization": "minimize"}]),
        ("config.toml scorers", "oops"),
    ],
)
def test_scorers_that_are_not_tables_of_plugins_are_one_line(
    source: str, scorers: Any
) -> None:
    with pytest.raises(UsageError) as error:
        current_scorers([], {"scorers": scorers}, [])
    assert str(error.value).startswith(f"{source}: ")
    assert "\n" not in str(error.value)


def test_scorers_flag_entries_are_checked_too() -> None:
    with pytest.raises(UsageError, match=r"^--scorers: every entry must be a table"):
        current_scorers(["--scorers", '["oops"]', "owner/model"], {}, [])


# Errors that exited 0, and the order of the arguments.


def test_no_arguments_is_one_line_with_status_2(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_line_error([], capsys, "MODEL: no model given; write heretic-kl")


def test_misspelled_heretic_setting_is_one_line_with_status_2(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "config.toml").write_text("kl_divergence_scal = 1\n")
    output = assert_one_line_error(
        ["owner/model"], capsys, "heretic's settings: kl_divergence_scal: "
    )
    # heretic-llm 1.4.0 rejects unknown settings itself; heretic master keeps
    # them for plugin tables, and the launcher names them.
    assert (
        "kl_divergence_scal: Extra inputs are not permitted (got 1); " in output
        or "kl_divergence_scal: not a setting of heretic (got 1); " in output
    )
    assert "correct it in config.toml" in output


def test_bad_heretic_flag_value_is_one_line_with_status_2(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_line_error(
        ["--n-trials", "many", "owner/model"],
        capsys,
        "heretic's settings: n_trials: Input should be a valid integer",
    )


def test_flag_after_model_says_model_comes_last(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_line_error(
        ["owner/model", "--n-trials", "1"],
        capsys,
        "MODEL comes last: 'owner/model' is followed by '--n-trials'; write "
        "heretic-kl [heretic-kl options] [heretic options] MODEL.",
    )


# KL prompts that select nothing, checked before the model loads.


@pytest.mark.parametrize(
    ("arguments", "config", "message"),
    [
        (
            ["--kl-prompts", ""],
            "",
            "--kl-prompts: empty; give a .txt file with one prompt per line, a "
            "dataset saved on disk, or a dataset ID (got '')",
        ),
        (
            ["--kl-prompts", '{"dataset": "good.txt", "split": "[:0]"}'],
            "",
            "--kl-prompts: 'good.txt' holds 2 prompts, and the split '[:0]' selects none;",
        ),
        (
            [],
            '[scorer.TeacherForcedKL]\nprompts = { dataset = "good.txt", split = "[5:]" }\n',
            "config.toml [scorer.TeacherForcedKL] prompts: 'good.txt' holds 2 prompts, "
            "and the split '[5:]' selects none;",
        ),
        (
            ["--kl-prompts", "bom.txt"],
            "",
            "--kl-prompts: 'bom.txt' holds only a byte-order mark and blank lines;",
        ),
    ],
)
def test_kl_prompts_that_select_nothing_stop_before_the_model_loads(
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    config: str,
    message: str,
) -> None:
    (folder / "bom.txt").write_bytes(b"\xef\xbb\xbf\n")
    (folder / "config.toml").write_text(config)
    assert_one_line_error([*arguments, "owner/model"], capsys, message)


# KL prompts that fail only when loaded: one line from the scorer.


def test_unloadable_dataset_is_one_line_naming_the_setting() -> None:
    def unreachable(specification: Any) -> list[Any]:
        raise ConnectionError(
            f"Couldn't reach {specification.dataset!r} on the Hub\n(offline)"
        )

    settings = TeacherForcedKLSettings.model_validate(
        {"prompts": {"dataset": "nobody/nothing", "split": "test", "column": "text"}}
    )
    with pytest.raises(UsageError) as error:
        load_scorer_prompts(unreachable, settings)
    assert str(error.value).startswith(
        "[scorer.TeacherForcedKL] prompts: cannot load 'nobody/nothing' "
        "(Couldn't reach 'nobody/nothing' on the Hub (offline));"
    )


def test_dataset_split_selecting_nothing_is_one_line() -> None:
    settings = TeacherForcedKLSettings.model_validate(
        {"prompts": {"dataset": "owner/data", "split": "test[:0]", "column": "text"}}
    )
    with pytest.raises(UsageError) as error:
        load_scorer_prompts(lambda specification: [], settings)
    assert str(error.value) == (
        "[scorer.TeacherForcedKL] prompts: 'owner/data' (split 'test[:0]') holds no "
        "prompts; point it at a non-empty prompt set."
    )


def test_prompt_file_holding_only_a_byte_order_mark_is_not_one_prompt(
    tmp_path: Path,
) -> None:
    # What heretic's loader makes of such a file (without the launcher's check).
    from heretic.utils import Prompt

    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf\n")
    settings = TeacherForcedKLSettings.model_validate(
        {"prompts": {"dataset": str(path)}}
    )
    with pytest.raises(UsageError, match="holds only a byte-order mark"):
        load_scorer_prompts(lambda specification: [Prompt("", "\ufeff")], settings)


@pytest.mark.end_to_end
def test_unreachable_dataset_after_the_model_loads_is_one_line(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    write_study_config(tmp_path)
    result = subprocess.run(
        module_command(
            "heretic_teacher_forced_kl.cli",
            "--kl-prompts",
            "nobody/nothing",
            str(tiny_llama_path),
        ),
        cwd=tmp_path,
        env=environment_with_repository(
            {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        ),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert (
        result.stdout.strip()
        .splitlines()[-1]
        .startswith(
            f"{ERROR}[scorer.TeacherForcedKL] prompts: cannot load 'nobody/nothing'"
        )
    ), output[-3000:]
    assert "Traceback" not in output
