# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The scorer as heretic master's plugin system sees it: loaded by heretic's real
`load_plugin`, its settings validated as heretic's evaluator validates them,
and scored through heretic's real `Context` (`plugin_contract_observations`).
"""

import math
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.plugin_contract_observations import observe


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
    working_directory = os.getcwd()
    try:
        return observe(tiny_llama_path, str(prompt_file), str(empty_file))
    finally:
        os.chdir(working_directory)


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


def test_scorer_inside_heretics_evaluator(
    tiny_llama_path: Path, tmp_path: Path
) -> None:
    from heretic.evaluator import Evaluator

    from development.damage import damage
    from development.heretic_host import heretic_model

    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text("Hi\nName a fruit.\nWhat is two plus two?\n")
    model = heretic_model(
        tiny_llama_path,
        scorers=[
            {
                "plugin": "heretic_teacher_forced_kl.TeacherForcedKL",
                "optimization": "minimize",
            }
        ],
        scorer={
            "TeacherForcedKL": {
                "prompts": {"dataset": str(prompt_file)},
                "kl_tokens": 2,
            }
        },
    )
    evaluator = Evaluator(model.settings, model)
    name = "KL divergence (teacher-forced, 2 tokens)"
    assert evaluator.get_objective_names() == [name]
    ((baseline_name, baseline),) = evaluator.baseline_scores
    assert (baseline_name, baseline.value) == (name, 0)
    ((_, original),) = evaluator.get_scores()
    assert abs(original.value) < 1e-6
    damage(model, strength=0.05)
    ((_, damaged),) = evaluator.get_scores()
    assert damaged.value > 0
    # The objective heretic hands to Optuna is the score (float32 sums: 1e-5).
    (objective,) = evaluator.get_objective_values(evaluator.get_scores())
    assert objective == pytest.approx(damaged.value, rel=1e-5)
