# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The scorer as heretic master's plugin system sees it.

They run in a process of their own, through
`tests/support/plugin_contract_driver.py`: against heretic's real plugin API
where the installed heretic has it, and otherwise (heretic-llm 1.4.0) against
the test double in `tests/support/doubles/plugin_api.py`.
"""

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.repository import environment_with_repository, module_command


@pytest.fixture(scope="module")
def observations(
    tiny_llama_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("plugin-contract")
    prompt_file = directory / "prompts.txt"
    prompt_file.write_text(
        "Hi\nTell me about the sea and its waves.\nWhat is two plus two?\nName a fruit.\n"
    )
    empty_file = directory / "empty.txt"
    empty_file.write_text("")
    result = subprocess.run(
        module_command(
            "tests.support.plugin_contract_driver",
            str(tiny_llama_path),
            str(prompt_file),
            str(empty_file),
        ),
        env=environment_with_repository(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(
        line for line in result.stdout.splitlines() if line.startswith("OBSERVATIONS ")
    )
    return json.loads(line.removeprefix("OBSERVATIONS "))


def test_scorer_subclasses_heretic_scorer(observations: dict[str, Any]) -> None:
    assert observations["subclasses_real_scorer"] is True


def test_heretic_loads_scorer_by_import_and_file_path(
    observations: dict[str, Any],
) -> None:
    assert observations["loaded_by_import_path"] is True
    assert observations["loaded_by_file_path"] is True
    assert observations["loaded_by_relative_file_path"] is True


def test_scorer_satisfies_plugin_contract(observations: dict[str, Any]) -> None:
    assert observations["contract_error"] == ""
    assert observations["defines_init"] is False
    assert observations["reproducible"] is True


def test_settings_come_from_scorer_table(observations: dict[str, Any]) -> None:
    assert observations["table_kl_tokens"] == 4
    assert observations["table_decay"] == 0.5
    assert observations["default_kl_tokens"] == 3
    assert observations["default_prompts"] == "mlabonne/harmless_alpaca"


@pytest.mark.parametrize("case", ["zero", "negative", "fraction", "text"])
def test_bad_kl_tokens_is_a_one_line_error_naming_the_setting(
    observations: dict[str, Any], case: str
) -> None:
    error = observations[f"bad_kl_tokens_{case}"]
    assert error.startswith(
        "UsageError: config.toml [scorer.TeacherForcedKL] kl_tokens"
    )
    assert "\n" not in error


def test_scores_are_heretic_scores(observations: dict[str, Any]) -> None:
    assert observations["baseline_is_score"] is True
    assert observations["original_is_score"] is True
    assert observations["baseline_value"] == 0
    assert abs(observations["original_value"]) < 1e-6
    assert observations["damaged_value"] > 0
    assert "(first token " in observations["damaged_rich"]
    assert "(first token " in observations["damaged_markdown"]
    assert observations["damaged_rich"].startswith(
        f"{observations['damaged_value']:.4f}"
    )
    assert observations["score_name"] == "KL divergence (teacher-forced, 3 tokens)"


def test_single_token_equals_built_in_first_token_kl(
    observations: dict[str, Any],
) -> None:
    assert observations["built_in_first_token_kl"] > 0
    assert math.isclose(
        observations["single_token_value"],
        observations["built_in_first_token_kl"],
        abs_tol=1e-5,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("empty_prompts_error", "UsageError: [scorer.TeacherForcedKL] prompts:"),
        (
            "missing_prompts_error",
            "UsageError: [scorer.TeacherForcedKL] prompts: no file",
        ),
        ("no_model_error", "RuntimeError: TeacherForcedKL needs the model"),
    ],
)
def test_bad_prompts_and_hosts_fail_at_init_with_one_line(
    observations: dict[str, Any], case: str, expected: str
) -> None:
    assert observations[case].startswith(expected)
    assert "\n" not in observations[case]
