# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Bad input on the real heretic master (the plugin API): one line and exit
status 2, before the model loads wherever the launcher can tell (issue 19).

They run in the environment of heretic master (`.venv-master`, built by
`scripts/test.sh` from `../shared/wheels`), like every test in `tests/master`.
"""

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from development.heretic_host import neutral_command_line
from heretic_teacher_forced_kl import TeacherForcedKL
from heretic_teacher_forced_kl.cli.main import main
from heretic_teacher_forced_kl.errors import UsageError
from heretic_teacher_forced_kl.names import TEACHER_FORCED_KL_PLUGIN
from tests.support.repository import environment_with_repository, module_command
from tests.test_launcher import write_study_config

#: The line that starts every error of `heretic-kl`.
ERROR = "heretic-kl: error: "

#: heretic master's refusal scorer, on the study folder's local prompts.
KEYWORD_RATE = '[scorer.KeywordRate]\nprompts = { dataset = "bad-evaluation.txt" }\n'

#: A `scorers` list with the teacher-forced scorer.
SCORERS = (
    'scorers = [{ plugin = "heretic.scorers.keyword_rate.KeywordRate", '
    'optimization = "minimize" }, '
    f'{{ plugin = "{TEACHER_FORCED_KL_PLUGIN}", optimization = "minimize" }}]\n'
)


@pytest.fixture
def study_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a fast CPU study's config.toml and prompt files."""
    write_study_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("HERETIC_"):
            monkeypatch.delenv(name)
    return tmp_path


def add_to_config(folder: Path, text: str) -> None:
    """Appends `text` to the folder's config.toml."""
    config = folder / "config.toml"
    config.write_text(config.read_text() + text)


def assert_one_line_before_loading(
    arguments: list[str], capsys: pytest.CaptureFixture[str], message: str
) -> None:
    """`heretic-kl arguments` stops with one line, and no model was loaded."""
    status = main(arguments)
    output = capsys.readouterr().out
    assert status == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith(ERROR + message), output
    assert ERROR not in "\n".join(lines[:-1])
    assert "Loading model" not in output


def test_scorers_entry_that_is_not_a_table_is_one_line(
    study_folder: Path, capsys: pytest.CaptureFixture[str], tiny_llama_path: Path
) -> None:
    add_to_config(study_folder, 'scorers = ["oops"]\n')
    assert_one_line_before_loading(
        [str(tiny_llama_path)],
        capsys,
        "config.toml scorers: every entry must be a table that names a plugin",
    )


@pytest.mark.parametrize(
    ("scorers", "table", "configured"),
    [
        (SCORERS, "TeacherForcedKL_fast", "none"),
        (
            SCORERS.replace(
                'optimization = "minimize" }]',
                'optimization = "minimize", instance_name = "quick" }]',
            ),
            "TeacherForcedKL_quik",
            "quick",
        ),
    ],
    ids=["orphan", "misspelled"],
)
def test_instance_table_of_no_instance_is_one_line_before_loading(
    study_folder: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_llama_path: Path,
    scorers: str,
    table: str,
    configured: str,
) -> None:
    add_to_config(
        study_folder, f"{scorers}{KEYWORD_RATE}[scorer.{table}]\nkl_tokens = 2\n"
    )
    instance = table.split("_", 1)[1]
    assert_one_line_before_loading(
        [str(tiny_llama_path)],
        capsys,
        f"config.toml [scorer.{table}]: no entry of scorers runs TeacherForcedKL "
        f"with instance_name '{instance}' (configured instance names: {configured})",
    )


def test_misspelled_heretic_setting_is_one_line(
    study_folder: Path, capsys: pytest.CaptureFixture[str], tiny_llama_path: Path
) -> None:
    # heretic master keeps unknown keys (for plugin tables) without a word.
    add_to_config(study_folder, "kl_divergence_scal = 1\n")
    assert_one_line_before_loading(
        [str(tiny_llama_path)],
        capsys,
        "heretic's settings: kl_divergence_scal: not a setting of heretic (got 1)",
    )


def test_misspelled_key_inside_the_prompts_passes_heretics_filter_and_is_named(
    study_folder: Path,
) -> None:
    # heretic keeps the table's known top-level keys only, and hands the prompts
    # table over whole; the scorer's settings model names the key inside it.
    from heretic.config import Settings
    from heretic.evaluator import Evaluator

    add_to_config(
        study_folder,
        '[scorer.TeacherForcedKL]\nprompts = { dataset = "good.txt", splt = "[:1]" }\n',
    )
    with neutral_command_line(study_folder):
        settings = Settings(model="owner/model")
    raw = Evaluator._get_scorer_settings_raw(
        SimpleNamespace(settings=settings),  # type: ignore[arg-type]
        scorer_cls=TeacherForcedKL,
        instance_name=None,
    )
    assert raw == {"prompts": {"dataset": "good.txt", "splt": "[:1]"}}
    with pytest.raises(
        UsageError, match=r"prompts\.splt: Extra inputs are not permitted"
    ):
        TeacherForcedKL.validate_settings(raw)


@pytest.mark.end_to_end
def test_unreachable_dataset_after_the_model_loads_is_one_line(
    study_folder: Path, tiny_llama_path: Path
) -> None:
    add_to_config(study_folder, KEYWORD_RATE)
    result = subprocess.run(
        module_command(
            "heretic_teacher_forced_kl.cli",
            "--kl-prompts",
            "nobody/nothing",
            str(tiny_llama_path),
        ),
        cwd=study_folder,
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
