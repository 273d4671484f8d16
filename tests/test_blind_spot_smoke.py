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
