# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The evidence study (`studies/evidence.py`) in its smoke size, so that it cannot rot.

One smoke run on SmolLM2-135M-Instruct (2 abliterations, a handful of
prompts) is shared by the tests of this module; the statistics and the
parameter sampling are also checked on their own, without a model.
"""

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studies.abliteration_sampling import sample_abliterations
from studies.correlation_statistics import (
    average_ranks,
    bootstrap_intervals,
    partial_spearman,
    spearman,
)
from studies.kl_measures import KL_VARIANTS

#: The files every study writes.
OUTPUT_FILES = (
    "results.json",
    "models.csv",
    "correlations.csv",
    "summary.md",
    "scatter_accuracy_drop.png",
    "scatter_nll_increase.png",
    "first_token_vs_teacher_forced_16.png",
)


@pytest.fixture(scope="module")
def smoke_run(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """Runs the smoke study once and returns its output folder and its results."""
    from studies import evidence

    output_directory = tmp_path_factory.mktemp("evidence")
    status = evidence.main(
        [
            "--smoke",
            "--model",
            str(smollm2_path),
            "--output-dir",
            str(output_directory),
            "--state",
            str(output_directory / "state"),
        ]
    )
    assert status == 0
    results = json.loads(
        (output_directory / "results.json").read_text(encoding="utf-8")
    )
    return output_directory, results


def models_by_name(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-model records, by name."""
    return {model["name"]: model for model in results["models"]}


@pytest.mark.smollm2
def test_original_has_no_divergence_and_no_damage(
    smoke_run: tuple[Path, dict[str, Any]],
) -> None:
    _, results = smoke_run
    original = models_by_name(results)["original"]
    assert original["is_original"]
    for variant in KL_VARIANTS:
        assert original["kl"][variant] == 0.0, variant
    assert original["nll_increase"] == 0.0
    assert original["accuracy"] == 1.0
    assert original["correct_answers"] == results["questions"]["kept"] >= 1


@pytest.mark.smollm2
def test_abliterations_change_the_model(smoke_run: tuple[Path, dict[str, Any]]) -> None:
    _, results = smoke_run
    abliterated = [model for model in results["models"] if not model["is_original"]]
    assert len(abliterated) == 2
    for model in abliterated:
        for variant in KL_VARIANTS:
            assert model["kl"][variant] > 1e-4, (model["name"], variant)
        assert model["nll_increase"] != 0.0
        assert model["parameters"]["direction_scope"] in ("global", "per layer")


@pytest.mark.smollm2
def test_sliced_teacher_forced_kl_equals_separate_engine(
    smoke_run: tuple[Path, dict[str, Any]],
) -> None:
    _, results = smoke_run
    for model in results["models"]:
        kl = model["kl"]
        # The N = 3 score sliced from the N = 16 pass equals a separate N = 3 engine's.
        assert kl["teacher_forced_3"] == pytest.approx(
            kl["teacher_forced_3_separate_engine"], rel=1e-5, abs=1e-9
        )
        # First-token KL from the first free-running step is heretic's own
        # `get_logprobs_batched` path, and the engine's first position agrees.
        assert kl["first_token"] == pytest.approx(
            kl["first_token_heretic_get_logprobs"], rel=1e-6, abs=1e-9
        )
        assert kl["teacher_forced_position_1"] == pytest.approx(
            kl["first_token"], rel=1e-4, abs=1e-9
        )


@pytest.mark.smollm2
def test_outputs_are_written(smoke_run: tuple[Path, dict[str, Any]]) -> None:
    output_directory, results = smoke_run
    for name in OUTPUT_FILES:
        path = output_directory / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    with (output_directory / "models.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["name"] for row in rows] == [
        "original",
        "abliteration-01",
        "abliteration-02",
    ]
    assert results["command"].startswith("python -m studies.evidence --smoke")
    summary = (output_directory / "summary.md").read_text(encoding="utf-8")
    assert "teacher-forced KL, N=16" in summary and "abliteration-02" in summary


@pytest.mark.smollm2
def test_correlations_are_within_bounds(smoke_run: tuple[Path, dict[str, Any]]) -> None:
    _, results = smoke_run
    statistics = results["analysis"]["statistics"]
    defined = 0
    for name, statistic in statistics.items():
        bound = 2.0 if name.startswith("difference_from_first_token") else 1.0
        for key in ("estimate", "low", "high"):
            value = statistic[key]
            if value is not None:
                assert -bound - 1e-12 <= value <= bound + 1e-12, (name, key, value)
        if statistic["low"] is not None:
            assert statistic["low"] <= statistic["high"]
        defined += statistic["estimate"] is not None
    # The NLL increase differs between the models, so its correlations are defined.
    for variant in KL_VARIANTS:
        assert statistics[f"spearman/{variant}/nll_increase"]["estimate"] is not None
    assert defined >= len(KL_VARIANTS)


@pytest.mark.smollm2
def test_a_resumed_run_measures_nothing_again(
    smoke_run: tuple[Path, dict[str, Any]], smollm2_path: Path
) -> None:
    from studies import evidence

    output_directory, results = smoke_run
    state = output_directory / "state"
    assert len((state / "models.jsonl").read_text().splitlines()) == 3
    resumed_directory = output_directory / "resumed"
    measured: list[dict[str, Any]] = []
    status = evidence.main(
        [
            "--smoke",
            "--model",
            str(smollm2_path),
            "--output-dir",
            str(resumed_directory),
            "--state",
            str(state),
        ],
        measured.append,
    )
    assert status == 0
    assert measured == []
    resumed = json.loads((resumed_directory / "results.json").read_text())
    assert resumed["models_taken_from_state"] == 3
    summary = (resumed_directory / "summary.md").read_text()
    assert "measured 0 models and took 3 from the resumable state" in summary
    assert [model["kl"] for model in resumed["models"]] == [
        model["kl"] for model in results["models"]
    ]
    # Every model records its teacher-forced KL position by position; the first is first-token KL.
    for model in results["models"]:
        positions = model["teacher_forced_by_position"]
        assert len(positions) == 16
        assert positions[0] == pytest.approx(
            model["kl"]["teacher_forced_position_1"], rel=1e-9, abs=1e-12
        )


def test_study_state_refuses_another_setup_and_survives_a_torn_line(
    tmp_path: Path,
) -> None:
    from studies.evidence import StudyState

    state = StudyState(tmp_path / "state")
    setup = {
        "configuration": {"model_path": "m", "seed": 0},
        "kept_ids": ["a", "b"],
        "original_heldout_nll": 0.7,
        "kl_reference_examples": ["x"],
    }
    state.check_setup(setup)
    # Summation order may change with the number of threads: a tiny difference passes.
    state.check_setup({**setup, "original_heldout_nll": 0.7 * (1 + 1e-7)})
    with pytest.raises(RuntimeError, match="kept_ids differ"):
        state.check_setup({**setup, "kept_ids": ["a"]})
    with pytest.raises(RuntimeError, match="original_heldout_nll differ"):
        state.check_setup({**setup, "original_heldout_nll": 0.8})
    state.append({"name": "original", "parameters": {}})
    with state.models_path.open("a") as file:
        file.write('{"name": "abliteration-01", "param')
    state.append({"name": "abliteration-01", "parameters": {"x": 1.0}})
    assert state.records() == {
        "original": {"name": "original", "parameters": {}},
        "abliteration-01": {"name": "abliteration-01", "parameters": {"x": 1.0}},
    }


def test_the_rank_driver_starts_the_state_from_the_evidence_results(
    tmp_path: Path,
) -> None:
    from studies.blind_spot_rank import seed_state_from_evidence
    from studies.evidence import StudyState

    results = {
        "configuration": {
            "model_path": str(tmp_path / "model"),
            "seed": 0,
            "kl_prompts": 48,
            "question_tokens": 20,
            "heldout_prompts": 24,
            "heldout_tokens": 64,
            "direction_prompts": 128,
        },
        "questions": {"kept_ids": ["q1"]},
        "original": {"heldout_nll": 0.7, "kl_reference_examples": ["x"]},
        "models": [
            {"name": "original", "parameters": {}},
            {"name": "abliteration-01", "parameters": {"x": 1.0}},
        ],
    }
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))
    state_directory = tmp_path / "state"
    taken = seed_state_from_evidence(results_path, state_directory, tmp_path / "model")
    assert taken == 2
    assert list(StudyState(state_directory).records()) == [
        "original",
        "abliteration-01",
    ]
    # An existing state is left alone.
    assert (
        seed_state_from_evidence(results_path, state_directory, tmp_path / "model") == 0
    )
    with pytest.raises(RuntimeError, match="cannot start this state"):
        seed_state_from_evidence(
            results_path, tmp_path / "other", tmp_path / "elsewhere"
        )


def records(sampled: list[Any]) -> list[dict[str, Any]]:
    """The flat parameter records of sampled abliterations."""
    return [abliteration.record() for abliteration in sampled]


def test_average_ranks_share_ties() -> None:
    ranks = average_ranks(np.array([10.0, 30.0, 20.0, 30.0, 10.0]))
    assert ranks.tolist() == [1.5, 4.5, 3.0, 4.5, 1.5]


def test_spearman_matches_scipy() -> None:
    # scipy comes with heretic-llm (through lm_eval and scikit-learn); it checks
    # the numpy implementation, which the study uses.
    from scipy.stats import spearmanr

    generator = np.random.default_rng(3)
    for _ in range(5):
        x = generator.integers(0, 6, size=25).astype(float)
        y = x + generator.normal(size=25)
        assert spearman(x, y) == pytest.approx(
            float(spearmanr(x, y).statistic), abs=1e-12
        )
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))
    assert spearman(np.arange(6.0), -(np.arange(6.0) ** 3)) == pytest.approx(-1.0)


def test_partial_spearman_removes_a_shared_cause() -> None:
    generator = np.random.default_rng(4)
    cause = generator.normal(size=400)
    x = cause + 0.3 * generator.normal(size=400)
    y = cause + 0.3 * generator.normal(size=400)
    assert spearman(x, y) > 0.8
    assert abs(partial_spearman(x, y, cause)) < 0.15
    assert partial_spearman(x, x, cause) == pytest.approx(1.0)


def test_bootstrap_intervals_bracket_a_strong_correlation() -> None:
    x = np.arange(30.0)
    y = x + np.random.default_rng(5).normal(scale=3.0, size=30)
    intervals = bootstrap_intervals(
        {"x": x, "y": y},
        {"rho": lambda columns: spearman(columns["x"], columns["y"])},
        resamples=300,
        seed=0,
    )
    rho = intervals["rho"]
    assert rho.defined_resamples == 300
    assert 0.5 < rho.low <= rho.estimate <= rho.high <= 1.0


def test_sampling_stays_in_heretic_ranges_and_is_reproducible() -> None:
    last = 29
    components = ["attn.o_proj", "mlp.down_proj"]
    sampled = sample_abliterations(
        60, seed=7, last_layer_index=last, components=components
    )
    assert {abliteration.direction_scope for abliteration in sampled} == {
        "global",
        "per layer",
    }
    for abliteration in sampled:
        assert 0.4 * last <= abliteration.sampled_direction_index <= 0.9 * last
        if abliteration.direction_scope == "per layer":
            assert abliteration.direction_index is None
        else:
            assert abliteration.direction_index == abliteration.sampled_direction_index
        for component in components:
            parameters = abliteration.parameters[component]
            assert 0.8 <= parameters.max_weight <= 1.5
            assert 0.6 * last <= parameters.max_weight_position <= last
            assert 0.0 <= parameters.min_weight <= parameters.max_weight
            assert 1.0 <= parameters.min_weight_distance <= 0.6 * last
    again = sample_abliterations(
        60, seed=7, last_layer_index=last, components=components
    )
    assert records(again) == records(sampled)
    other = sample_abliterations(
        60, seed=8, last_layer_index=last, components=components
    )
    assert records(other) != records(sampled)
