# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The `heretic-kl` launcher: scorer names, settings precedence, bad input and
real heretic-llm 1.4.0 runs (the plugin-API path runs against the real heretic
master in `tests/master`).
"""

import math
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from heretic_teacher_forced_kl import TeacherForcedKL
from heretic_teacher_forced_kl.cli.launcher.config import effective_settings
from heretic_teacher_forced_kl.cli.launcher.scorers import (
    registered_scorers,
    replace_kl_scorer,
    resolve_scorer,
)
from heretic_teacher_forced_kl.errors import UsageError
from heretic_teacher_forced_kl.names import (
    BUILT_IN_KL_PLUGIN,
    ENTRY_POINT_GROUP,
    TEACHER_FORCED_KL_PLUGIN,
)
from tests.support.launcher import run_in_process

TESTS_DIRECTORY = Path(__file__).resolve().parent
PROMPTS_DIRECTORY = (
    TESTS_DIRECTORY.parent / "src" / "heretic_teacher_forced_kl" / "data" / "prompts"
)
LAUNCHER = [sys.executable, "-m", "heretic_teacher_forced_kl.cli"]
KEYWORD_RATE = {
    "plugin": "heretic.scorers.keyword_rate.KeywordRate",
    "optimization": "minimize",
}


def run_launcher(
    arguments: list[str], directory: Path
) -> subprocess.CompletedProcess[str]:
    """Runs `heretic-kl` with `arguments` in `directory`, in process, without a terminal."""
    return run_in_process(arguments, directory)


def write_study_config(directory: Path, extra: str = "", trials: int = 3) -> None:
    """A heretic config for a fast CPU study of `trials` trials with local prompt files."""
    for name, source in {
        "good.txt": "harmless_directions.txt",
        "bad.txt": "harmful_directions.txt",
        "good-evaluation.txt": "harmless_evaluation.txt",
        "bad-evaluation.txt": "harmful_evaluation.txt",
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
        'study_checkpoint_dir = "checkpoints"\n'
        'good_prompts = { dataset = "good.txt" }\n'
        'bad_prompts = { dataset = "bad.txt" }\n'
        'good_evaluation_prompts = { dataset = "good-evaluation.txt" }\n'
        'bad_evaluation_prompts = { dataset = "bad-evaluation.txt" }\n' + extra
    )


def teacher_forced_values(output: str) -> list[float]:
    """The teacher-forced KL divergence of every evaluation the launcher printed."""
    return [
        float(value)
        for value in re.findall(
            r"KL divergence \(teacher-forced\): ([-\d.eE+nai]+)", output
        )
    ]


# Scorer names.


def test_package_registers_its_scorer_entry_point() -> None:
    (entry_point,) = entry_points(group=ENTRY_POINT_GROUP, name="teacher-forced-kl")
    assert entry_point.load() is TeacherForcedKL
    assert registered_scorers()["teacher-forced-kl"] == TEACHER_FORCED_KL_PLUGIN


def test_kl_divergence_names_heretic_built_in_scorer() -> None:
    choice = resolve_scorer("kl-divergence")
    assert choice.plugin == BUILT_IN_KL_PLUGIN
    assert choice.is_built_in_kl


def test_unknown_scorer_lists_registered_names() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown scorer 'first-token'; registered scorers: kl-divergence, teacher-forced-kl",
    ):
        resolve_scorer("first-token")


# Settings precedence.


def test_flags_win_over_config_table() -> None:
    config = {
        "scorer": {"TeacherForcedKL": {"kl_tokens": 4, "position_weight_decay": 0.5}}
    }
    settings, prompts_set = effective_settings(config, {"kl_tokens": 2})
    assert settings.kl_tokens == 2
    assert settings.position_weight_decay == 0.5
    assert prompts_set is False


def test_config_table_applies_without_flags() -> None:
    config = {
        "scorer": {"TeacherForcedKL": {"kl_tokens": 6, "prompts": {"dataset": "x.txt"}}}
    }
    settings, prompts_set = effective_settings(config, {})
    assert settings.kl_tokens == 6
    assert settings.prompts.dataset == "x.txt"
    assert prompts_set is True


def test_invalid_config_table_is_a_one_line_error() -> None:
    with pytest.raises(
        UsageError, match=r"config.toml \[scorer.TeacherForcedKL\] kl_tokens"
    ):
        effective_settings({"scorer": {"TeacherForcedKL": {"kl_tokens": 0}}}, {})


# The plugin-API path.


def test_chosen_scorer_replaces_built_in_kl_and_keeps_others() -> None:
    scorers = [KEYWORD_RATE, {"plugin": BUILT_IN_KL_PLUGIN, "optimization": "minimize"}]
    assert replace_kl_scorer(scorers, TEACHER_FORCED_KL_PLUGIN) == [
        KEYWORD_RATE,
        {"plugin": TEACHER_FORCED_KL_PLUGIN, "optimization": "minimize"},
    ]


def test_chosen_scorer_is_appended_when_no_kl_scorer_is_configured() -> None:
    assert replace_kl_scorer([KEYWORD_RATE], TEACHER_FORCED_KL_PLUGIN) == [
        KEYWORD_RATE,
        {"plugin": TEACHER_FORCED_KL_PLUGIN, "optimization": "minimize"},
    ]


def test_built_in_kl_can_replace_teacher_forced_kl() -> None:
    scorers = [
        KEYWORD_RATE,
        {"plugin": TEACHER_FORCED_KL_PLUGIN, "optimization": "none"},
    ]
    assert replace_kl_scorer(scorers, BUILT_IN_KL_PLUGIN)[1] == {
        "plugin": BUILT_IN_KL_PLUGIN,
        "optimization": "none",
    }


# Bad input: a one-line error and exit status 2 before any model is loaded.


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--scorer", "nonsense", "owner/model"],
            "--scorer: unknown scorer 'nonsense'; registered scorers:",
        ),
        (
            ["--kl-tokens", "0", "owner/model"],
            "--kl-tokens: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            ["--kl-tokens", "-3", "owner/model"],
            "--kl-tokens: Input should be greater than or equal to 1 (got -3)",
        ),
        (
            ["--kl-tokens", "2.5", "owner/model"],
            "--kl-tokens: expected an integer, got '2.5'",
        ),
        (
            ["--kl-tokens", "many", "owner/model"],
            "--kl-tokens: expected an integer, got 'many'",
        ),
        (
            ["--position-weight-decay", "0", "owner/model"],
            "--position-weight-decay: Input should be greater than 0",
        ),
        (
            ["--reference-storage", "disk", "owner/model"],
            "--reference-storage: Input should be 'auto', 'device' or 'cpu'",
        ),
        (["./no/such/model"], "MODEL: no model folder at './no/such/model'"),
        (["--model", "/no/such/model"], "MODEL: no model folder at '/no/such/model'"),
        (
            ["--scorer", "kl-divergence", "--kl-tokens", "3", "owner/model"],
            "--kl-tokens: these options configure teacher-forced-kl",
        ),
    ],
)
def test_bad_input_stops_before_loading_a_model(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = run_launcher(arguments, tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2
    assert output.startswith("heretic-kl: error: ")
    assert message in output
    assert len(output.splitlines()) == 1
    assert "Loading model" not in output


def test_bad_config_table_stops_before_loading_a_model(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[scorer.TeacherForcedKL]\nkl_tokens = 0\n")
    result = run_launcher(["owner/model"], tmp_path)
    assert result.returncode == 2
    assert "[scorer.TeacherForcedKL] kl_tokens" in result.stdout + result.stderr


def test_help_shows_launcher_and_heretic_options(tmp_path: Path) -> None:
    # A process of its own: heretic prints its help while `heretic.main` is
    # imported, which happens once per process.
    result = subprocess.run(
        [*LAUNCHER, "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0
    assert "--kl-tokens" in result.stdout
    assert "--scorer" in result.stdout
    # heretic's own options follow.
    assert "--n-trials" in result.stdout
    assert "--evaluate-model" in result.stdout


# Real heretic-llm 1.4.0 runs.


@pytest.mark.end_to_end
def test_study_reports_teacher_forced_kl_for_every_trial(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    write_study_config(tmp_path, "\n[scorer.TeacherForcedKL]\nkl_tokens = 5\n")
    result = run_launcher(
        ["--non-interactive", "--kl-tokens", "3", str(tiny_llama_path)], tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    values = teacher_forced_values(output)
    assert len(values) == 3
    assert all(math.isfinite(value) and value >= 0 for value in values)
    # The flag (3 tokens) won over the config table (5 tokens).
    assert "3 prompts x" not in output
    assert "x 3 tokens x" in output
    assert "Pareto front" in output


@pytest.mark.end_to_end
def test_damaged_model_teacher_forced_kl_differs_from_first_token_kl(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    damaged_path = tmp_path / "damaged"
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "mlp.down_proj" in name:
                parameter.add_(
                    0.5
                    * parameter.std()
                    * torch.randn(parameter.shape, generator=generator)
                )
    model.save_pretrained(damaged_path)
    for file in tiny_llama_path.iterdir():
        if "token" in file.name or file.name.endswith(".jinja"):
            (damaged_path / file.name).write_bytes(file.read_bytes())

    write_study_config(tmp_path)
    evaluate = ["--evaluate-model", str(damaged_path), str(tiny_llama_path)]

    first_token = run_launcher(["--scorer", "kl-divergence", *evaluate], tmp_path)
    assert first_token.returncode == 0, first_token.stderr[-3000:]
    (first_token_kl,) = [
        float(value)
        for value in re.findall(r"KL divergence: ([\d.]+)", first_token.stdout)
    ]

    single = run_launcher(["--kl-tokens", "1", *evaluate], tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    (single_token_kl,) = teacher_forced_values(single.stdout)

    multiple = run_launcher(["--kl-tokens", "4", *evaluate], tmp_path)
    assert multiple.returncode == 0, multiple.stderr[-3000:]
    (multiple_token_kl,) = teacher_forced_values(multiple.stdout)

    assert first_token_kl > 0
    assert single_token_kl == pytest.approx(first_token_kl, abs=2e-4)
    assert abs(multiple_token_kl - first_token_kl) > 1e-3
