# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The blind-spot precondition checks (`studies/blind_spot_preconditions.py`) in
their smoke size, so that they cannot rot.

The smoke run compares SmolLM2 with itself: every damage and KL figure must
then be exactly that of an unchanged model, and both columns of the table
must agree.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studies.blind_spot_preconditions import (
    heretic_common_prefix,
    opener_share,
)
from studies.kl_measures import KL_VARIANTS


def test_the_prefix_is_heretics_and_the_share_counts_openers() -> None:
    # heretic strips trailing spaces from the common prefix.
    assert heretic_common_prefix(["Certainly! Here", "Certainly! The"]) == "Certainly!"
    assert heretic_common_prefix(["Certainly! Here", "Sorry, I cannot"]) == ""
    assert opener_share(["Certainly! A", " Certainly!", "Sure"], "Certainly! ") == (
        pytest.approx(2 / 3)
    )


@pytest.fixture(scope="module")
def preconditions(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """Runs the smoke check once, with SmolLM2 as both models."""
    from studies import blind_spot_preconditions

    output_directory = tmp_path_factory.mktemp("preconditions")
    status = blind_spot_preconditions.main(
        [
            "--smoke",
            "--model",
            str(smollm2_path),
            "--original",
            str(smollm2_path),
            "--output-dir",
            str(output_directory),
        ]
    )
    assert status == 0
    results = json.loads(
        (output_directory / "preconditions.json").read_text(encoding="utf-8")
    )
    return output_directory, results


@pytest.mark.smollm2
def test_a_model_compared_with_itself_has_no_damage(
    preconditions: tuple[Path, dict[str, Any]],
) -> None:
    _, results = preconditions
    damage = results["opener_damage"]
    for variant in KL_VARIANTS:
        assert damage["kl"][variant] == 0.0, variant
    assert damage["opener_model_accuracy"] == 1.0
    assert damage["heldout_nll_increase"] == 0.0


@pytest.mark.smollm2
def test_both_columns_agree_and_the_table_is_written(
    preconditions: tuple[Path, dict[str, Any]],
) -> None:
    output_directory, results = preconditions
    models = results["models"]
    assert models["opener"] == models["original"]
    opener = models["opener"]
    # SmolLM2 does not open with the phrase, and its answers share no prefix.
    assert opener["default_system_prompt"]["opener_share"] == 0.0
    assert opener["heretic_prefix_check"]["in_loop_settings"]["common_prefix"] == ""
    refusals = opener["refusals"]
    assert (
        0 <= refusals["refusal_system_prompt"] <= refusals["harmful_evaluation_prompts"]
    )
    table = (output_directory / "preconditions.md").read_text(encoding="utf-8")
    assert "heretic's common prefix, in-loop settings" in table
    assert "held-out NLL increase" in table


def fake_model(
    name: str, scale: float, generator: np.random.Generator
) -> dict[str, Any]:
    """A measured model of the rank study's state, with made-up numbers."""
    positions = [float(scale * (1 + generator.random())) for _ in range(16)]
    return {
        "name": name,
        "is_original": False,
        "parameters": {},
        "kl": {
            variant: float(scale * (1 + generator.random())) for variant in KL_VARIANTS
        },
        "accuracy": float(1 - scale * generator.random()),
        "nll_increase": float(scale * generator.random()),
        "teacher_forced_by_position": positions,
    }


def test_the_rank_report_compares_the_draws_measured_on_both(tmp_path: Path) -> None:
    from studies import blind_spot_rank_report
    from studies.correlation_statistics import spearman

    generator = np.random.default_rng(0)
    for model, count in (("opener", 9), ("original", 8)):
        state = tmp_path / f"rank-{model}" / "state"
        state.mkdir(parents=True)
        lines = [
            json.dumps(fake_model(f"abliteration-{index:02d}", 0.01 * index, generator))
            for index in range(1, count + 1)
        ]
        (state / "models.jsonl").write_text("\n".join(lines) + "\n")
    status = blind_spot_rank_report.main(
        ["--directory", str(tmp_path), "--opener-tokens", "2", "--bootstrap", "50"]
    )
    assert status == 0
    result = json.loads((tmp_path / "rank.json").read_text())
    # Only the 8 draws measured on both models are compared.
    assert result["abliterations_in_both"] == 8
    assert result["models"]["opener"]["abliterations"] == 8
    opener_lines = (tmp_path / "rank-opener" / "state" / "models.jsonl").read_text()
    models = [json.loads(line) for line in opener_lines.splitlines()][:8]
    # The first position after a 2-token opener is position 3.
    expected = spearman(
        np.array([model["teacher_forced_by_position"][2] for model in models]),
        np.array([1 - model["accuracy"] for model in models]),
    )
    statistic = result["models"]["opener"]["after_opener"]["statistics"][
        "spearman/after_opener_first_position/accuracy_drop"
    ]
    assert statistic["estimate"] == pytest.approx(expected)
    table = (tmp_path / "rank.md").read_text()
    assert "PARTIAL" in table and "first position after the opener" in table
