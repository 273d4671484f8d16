# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The in-loop study (`python -m studies.in_loop`) in its smoke size, so that it cannot rot.

One smoke run on SmolLM2-135M-Instruct (1 seed, 2 trials per arm, a handful
of prompts: two real heretic-llm 1.4.0 studies through `heretic-kl`, the
re-measurement, the damage, the analysis and the report) is shared by the
tests of this module; a second run on the same state must do no new work.
The analysis helpers are also checked on their own, without a model.
"""

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from studies.in_loop_analysis import (
    compare_arms,
    heretic_pareto_front,
    kl_shape_check,
    matched_pairs,
    pick_at_most,
    sign_flip_test,
)
from studies.in_loop_report import CSV_COLUMNS

#: The files every run writes next to its state.
OUTPUT_FILES = (
    "trials.csv",
    "analysis.json",
    "summary.md",
    "picks_accuracy_drop.png",
    "picks_nll_increase.png",
    "goodhart.png",
)

#: The arms of the smoke run (the default ones).
ARMS = ("first-token", "teacher-forced-3")


@pytest.fixture(scope="module")
def smoke_run(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Runs the smoke study once, then again on the same state; returns what both did."""
    from studies import in_loop

    folder = tmp_path_factory.mktemp("in-loop")
    # The first run commits its state as the background lanes do, into a
    # scratch repository that holds the output folder.
    for command in (
        ["init", "-q"],
        ["config", "user.name", "test"],
        ["config", "user.email", "test@example.invalid"],
    ):
        subprocess.run(["git", "-C", str(folder), *command], check=True)
    arguments = [
        "--smoke",
        "--model",
        str(smollm2_path),
        "--output-dir",
        str(folder / "output"),
        "--work-dir",
        str(folder / "work"),
    ]
    # Both arms' heretic studies run at once, as the full run's do.
    assert in_loop.main([*arguments, "--workers", "2", "--commit"]) == 0
    log = subprocess.run(
        ["git", "-C", str(folder), "log", "--format=%s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    unsaved = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--", "output"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    state = folder / "output" / "state"
    first_state = {
        path.name: path.read_bytes()
        for path in sorted(state.glob("*.json"))
        if path.name != "run.json"
    }
    assert in_loop.main(arguments) == 0
    second_state = {
        path.name: path.read_bytes()
        for path in sorted(state.glob("*.json"))
        if path.name != "run.json"
    }
    run = json.loads((state / "run.json").read_text(encoding="utf-8"))
    with (folder / "output" / "trials.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return {
        "folder": folder,
        "output": folder / "output",
        "run": run,
        "rows": rows,
        "first_state": first_state,
        "second_state": second_state,
        "commits": log,
        "unsaved": unsaved,
    }


@pytest.mark.smollm2
def test_the_state_is_committed_as_it_comes(smoke_run: dict[str, Any]) -> None:
    # Newest first: the report at the end, and before it, for each study, its
    # finish (committed by the thread that ran it) and its measurements.
    commits = smoke_run["commits"]
    assert commits[0] == "In-loop study (output): the report from the state"
    for arm in ARMS:
        assert f"In-loop study (output): {arm}-seed-0 finished" in commits
        assert f"In-loop study (output): {arm}-seed-0 measured" in commits
    # Nothing the run wrote is left uncommitted.
    assert smoke_run["unsaved"] == ""


@pytest.mark.smollm2
def test_trials_csv_has_one_row_per_trial(smoke_run: dict[str, Any]) -> None:
    rows = smoke_run["rows"]
    with (smoke_run["output"] / "trials.csv").open(encoding="utf-8") as file:
        header = next(csv.reader(file))
    assert tuple(header) == CSV_COLUMNS
    assert len(rows) == 2 * len(ARMS)
    assert sorted((row["arm"], row["trial"]) for row in rows) == sorted(
        (arm, trial) for arm in ARMS for trial in ("1", "2")
    )
    for row in rows:
        assert row["seed"] == "0"
        assert 0 <= int(row["refusals"]) <= int(row["bad_prompts"]) == 8
        assert row["pareto"] in ("true", "false")
        # Both KL measures were re-measured for every trial.
        assert float(row["first_token_kl"]) > 0 and float(row["teacher_forced_kl"]) > 0


@pytest.mark.smollm2
def test_pareto_flags_follow_refusals_and_heretic_kl(smoke_run: dict[str, Any]) -> None:
    rows = smoke_run["rows"]
    for arm in ARMS:
        arm_rows = [row for row in rows if row["arm"] == arm]
        flagged = {int(row["trial"]) for row in arm_rows if row["pareto"] == "true"}
        assert flagged, arm
        for row in arm_rows:
            dominated = any(
                int(other["refusals"]) <= int(row["refusals"])
                and float(other["heretic_kl"]) <= float(row["heretic_kl"])
                and (
                    int(other["refusals"]) < int(row["refusals"])
                    or float(other["heretic_kl"]) < float(row["heretic_kl"])
                )
                for other in arm_rows
            )
            assert (row["pareto"] == "true") == (not dominated), (arm, row)
        # An abliterated model is measured, not the original: the held-out NLL
        # of the original's answers changes (the damage references are built
        # from the original before any trial is applied).
        for row in arm_rows:
            if row["nll_increase"] != "":
                assert float(row["nll_increase"]) != 0.0, row
        # Pareto trials always have their damage measured.
        for row in arm_rows:
            if row["pareto"] == "true":
                assert row["accuracy_drop"] != "" and row["nll_increase"] != ""
                assert row["damage_reason"] == "pareto"
            else:
                assert row["damage_reason"] in ("sample", "")
                assert (row["accuracy_drop"] == "") == (row["damage_reason"] == "")


@pytest.mark.smollm2
def test_reapplied_trials_reproduce_heretics_kl(smoke_run: dict[str, Any]) -> None:
    for row in smoke_run["rows"]:
        own = (
            row["first_token_kl"]
            if row["arm"] == "first-token"
            else row["teacher_forced_kl"]
        )
        # Re-applying the trial's parameters with heretic's `Model.abliterate`
        # in this process gives the KL that heretic recorded in its study.
        assert float(own) == pytest.approx(float(row["heretic_kl"]), rel=2e-3), row


@pytest.mark.smollm2
def test_startup_trial_coincides_across_arms(smoke_run: dict[str, Any]) -> None:
    state = smoke_run["output"] / "state"
    studies = [
        json.loads((state / f"study-{arm}-seed-0.json").read_text(encoding="utf-8"))
        for arm in ARMS
    ]
    first_trials = [study["trials"][0] for study in studies]
    assert first_trials[0]["parameters"] == first_trials[1]["parameters"]
    assert first_trials[0]["direction_index"] == first_trials[1]["direction_index"]
    rows = {(row["arm"], row["trial"]): row for row in smoke_run["rows"]}
    assert (
        rows[("first-token", "1")]["teacher_forced_kl"]
        == rows[("teacher-forced-3", "1")]["teacher_forced_kl"]
    )
    assert studies[0]["arm"]["kl_divergence_target"] == 0.01
    assert studies[1]["arm"]["kl_divergence_target"] == pytest.approx(0.0054)
    assert studies[1]["config"]["kl_divergence_target"] == pytest.approx(0.0054)


@pytest.mark.smollm2
def test_resuming_a_finished_run_does_no_new_work(smoke_run: dict[str, Any]) -> None:
    assert smoke_run["first_state"] == smoke_run["second_state"]
    sessions = smoke_run["run"]["sessions"]
    assert len(sessions) == 2
    assert sessions[0]["work"]["studies"] == 2
    assert sessions[0]["work"]["kl_measurements"] == 4
    assert sessions[1]["work"] == {
        "studies": 0,
        "kl_measurements": 0,
        "damage_measurements": 0,
    }


@pytest.mark.smollm2
def test_report_is_written_and_complete(smoke_run: dict[str, Any]) -> None:
    output = smoke_run["output"]
    for name in OUTPUT_FILES:
        path = output / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = (output / "summary.md").read_text(encoding="utf-8")
    assert "PARTIAL" not in summary
    assert "teacher-forced-3 against first-token" in summary
    analysis = json.loads((output / "analysis.json").read_text(encoding="utf-8"))
    assert analysis["progress"]["complete"]
    (comparison,) = analysis["comparisons"]
    assert comparison["seeds"] == [0]
    assert comparison["overall"]["accuracy_drop"]["smallest_p_value"] == 1.0
    assert [arm["arm"] for arm in analysis["kl_shape"]["arms"]] == list(ARMS)
    assert "## KL shape" in summary


@pytest.mark.smollm2
def test_report_alone_marks_a_partial_run(
    smoke_run: dict[str, Any], tmp_path: Path
) -> None:
    import shutil

    from studies import in_loop

    # A copy of the state with one study missing, as if the run had been stopped.
    output = tmp_path / "output"
    shutil.copytree(smoke_run["output"] / "state", output / "state")
    (output / "state" / "study-teacher-forced-3-seed-0.json").unlink()
    assert in_loop.main(["--report-only", "--output-dir", str(output)]) == 0
    summary = (output / "summary.md").read_text(encoding="utf-8")
    assert "**PARTIAL**: 1 of 2 studies finished" in summary
    with (output / "trials.csv").open(encoding="utf-8") as file:
        assert len(list(csv.DictReader(file))) == 2


def front_rows(entries: list[tuple[int, int, float]]) -> list[dict[str, Any]]:
    """Pareto rows for the analysis helpers: (trial, refusals, damage)."""
    return [
        {
            "trial": trial,
            "refusals": refusals,
            "accuracy_drop": damage,
            "nll_increase": damage / 10,
        }
        for trial, refusals, damage in entries
    ]


def test_heretic_pareto_front_is_sorted_and_non_dominated() -> None:
    trials = [(1, 5, 0.02), (2, 3, 0.05), (3, 5, 0.01), (4, 3, 0.06), (5, 9, 0.001)]
    # Sorted by (refusals, KL): trial 2 (3, 0.05), trial 3 (5, 0.01), trial 5 (9, 0.001).
    assert heretic_pareto_front(trials) == [2, 3, 5]
    assert heretic_pareto_front([(1, 2, 0.1), (2, 2, 0.1)]) == [1]


def test_picks_at_matched_refusal_counts() -> None:
    baseline = front_rows([(1, 2, 0.20), (2, 5, 0.10)])
    other = front_rows([(7, 3, 0.15), (8, 6, 0.05)])
    assert pick_at_most(baseline, 1) is None
    assert pick_at_most(baseline, 4)["trial"] == 1
    pairs = matched_pairs(baseline, other)
    # Refusal counts 2 (no pick of the other arm yet), 3, 5 and 6.
    assert [pair["refusals"] for pair in pairs] == [3, 5, 6]
    assert [(pair["baseline_trial"], pair["other_trial"]) for pair in pairs] == [
        (1, 7),
        (2, 7),
        (2, 8),
    ]
    assert pairs[0]["difference_accuracy_drop"] == pytest.approx(-0.05)
    assert pairs[1]["difference_accuracy_drop"] == pytest.approx(0.05)
    assert not any(pair["exact"] for pair in pairs)


def test_comparison_below_the_original_drops_counts_at_or_above_it() -> None:
    rows = [
        {
            "arm": arm,
            "seed": 0,
            "trial": trial,
            "refusals": refusals,
            "pareto": True,
            "base_refusals": 8,
            "accuracy_drop": damage,
            "nll_increase": damage / 10,
        }
        for arm, trial, refusals, damage in [
            ("first-token", 1, 3, 0.20),
            ("first-token", 2, 9, 0.02),
            ("teacher-forced-3", 3, 3, 0.10),
            ("teacher-forced-3", 4, 8, 0.05),
        ]
    ]
    every = compare_arms(rows, "teacher-forced-3", resamples=100, seed=0)
    below = compare_arms(
        rows, "teacher-forced-3", resamples=100, seed=0, below_original=True
    )
    # Every count: 3 (-0.10), 8 (0.05 - 0.20) and 9 (0.05 - 0.02); below 8: only 3.
    assert [pair["refusals"] for pair in every["per_seed"][0]["pairs"]] == [3, 8, 9]
    assert every["overall"]["accuracy_drop"]["estimate"] == pytest.approx(
        (-0.10 - 0.15 + 0.03) / 3
    )
    assert [pair["refusals"] for pair in below["per_seed"][0]["pairs"]] == [3]
    assert below["overall"]["accuracy_drop"]["estimate"] == pytest.approx(-0.10)
    assert below["below_original"] and not every["below_original"]


def test_sign_flip_test_is_exact() -> None:
    # Five seeds all on one side: only the two all-same-sign assignments are as extreme.
    result = sign_flip_test([-0.01, -0.02, -0.03, -0.04, -0.05])
    assert (result["negative"], result["positive"]) == (5, 0)
    assert result["p_value"] == pytest.approx(2 / 32)
    assert result["smallest_p_value"] == pytest.approx(2 / 32)
    # Mean 0.1 of [0.3, -0.1]: the assignments (+,+), (+,-) and their mirrors
    # give |mean| 0.2, 0.1, 0.1, 0.2, all at least 0.1.
    assert sign_flip_test([0.3, -0.1])["p_value"] == pytest.approx(1.0)
    # [0.3, 0.1, 0.1]: |means| over the 8 assignments are 0.5/3 (twice),
    # 0.3/3 (four times), 0.1/3 (twice); only the 2 of 0.5/3 are as extreme.
    assert sign_flip_test([0.3, 0.1, 0.1])["p_value"] == pytest.approx(2 / 8)
    assert sign_flip_test([])["p_value"] is None


def shape_row(
    arm: str, seed: int, startup: bool, first_token: float, teacher_forced: float
) -> dict[str, Any]:
    """A trial row with both KL measures, for the KL shape check."""
    return {
        "arm": arm,
        "seed": seed,
        "startup": startup,
        "first_token_kl": first_token,
        "teacher_forced_kl": teacher_forced,
    }


def test_kl_shape_check_compares_guided_with_startup_trials_per_seed() -> None:
    rows = [
        # Seed 0: startup ratios 0.5 and 0.7 (median 0.6), guided 0.9.
        shape_row("first-token", 0, True, 0.02, 0.01),
        shape_row("first-token", 0, True, 0.01, 0.007),
        shape_row("first-token", 0, False, 0.01, 0.009),
        # Seed 1: startup 0.5, guided 0.6 and 0.8 (median 0.7).
        shape_row("first-token", 1, True, 0.02, 0.01),
        shape_row("first-token", 1, False, 0.01, 0.006),
        shape_row("first-token", 1, False, 0.01, 0.008),
        # Missing or zero first-token KL does not count; seed 2 has no guided trial.
        shape_row("first-token", 1, False, 0.0, 0.008),
        {**shape_row("first-token", 1, False, 0.01, 0.0), "teacher_forced_kl": None},
        shape_row("first-token", 2, True, 0.01, 0.005),
        shape_row("teacher-forced-3", 0, True, 0.02, 0.01),
        shape_row("teacher-forced-3", 0, False, 0.02, 0.01),
    ]
    shape = kl_shape_check(rows, resamples=200, seed=0)
    first_token, teacher_forced = shape["arms"]
    assert shape["trials"] == 10  # Every row with both measures, zero KL included.
    assert -1.0 <= shape["spearman_first_token_teacher_forced"] <= 1.0
    assert first_token["arm"] == "first-token" and first_token["seeds"] == [0, 1]
    assert first_token["per_seed_difference"] == pytest.approx({0: 0.3, 1: 0.2})
    assert first_token["mean_difference"]["estimate"] == pytest.approx(0.25)
    assert first_token["mean_difference"]["count"] == 2
    # Pooled medians: startup 0.5, 0.7, 0.5, 0.5; guided 0.9, 0.6, 0.8.
    assert first_token["median_ratio_startup"] == pytest.approx(0.5)
    assert first_token["median_ratio_guided"] == pytest.approx(0.8)
    assert teacher_forced["per_seed_difference"] == pytest.approx({0: 0.0})
    assert teacher_forced["mean_difference"]["low"] is None


def test_checkpoint_reading_refuses_an_unfinished_study(tmp_path: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    from studies import in_loop

    # A study stored the way heretic 1.4.0 stores it: an Optuna journal named
    # after the model, study "heretic", the measurements in each trial's
    # user attributes and "finished" in the study's.
    path = str(tmp_path / "model.jsonl")
    storage = JournalStorage(
        JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
    )
    study = optuna.create_study(
        study_name="heretic", storage=storage, directions=["minimize", "minimize"]
    )
    study.set_user_attr("finished", False)
    trial = study.ask()
    trial.suggest_categorical("direction_scope", ["global", "per layer"])
    for name, value in {
        "index": 1,
        "kl_divergence": 0.02,
        "refusals": 3,
        "base_refusals": 8,
        "n_bad_prompts": 64,
        "direction_index": None,
        "parameters": {"attn.o_proj": {"max_weight": 1.0}},
    }.items():
        trial.set_user_attr(name, value)
    study.tell(trial, [0.02, 0.375])
    with pytest.raises(RuntimeError, match="did not finish"):
        in_loop.read_checkpoint(tmp_path, expected_trials=1)
    study.set_user_attr("finished", True)
    with pytest.raises(RuntimeError, match="did not finish"):
        in_loop.read_checkpoint(tmp_path, expected_trials=2)
    (record,) = in_loop.read_checkpoint(tmp_path, expected_trials=1)
    assert record["trial"] == 1 and record["refusals"] == 3
    assert record["heretic_kl"] == 0.02 and record["bad_prompts"] == 64


@pytest.mark.smollm2
@pytest.mark.end_to_end
def test_the_selection_test_measures_every_distinct_trial_once(
    smoke_run: dict[str, Any], smollm2_path: Path
) -> None:
    from studies import selection_test

    output = smoke_run["folder"] / "output"
    arguments = ["--smoke", "--model", str(smollm2_path), "--in-loop-dir", str(output)]
    assert selection_test.main([*arguments, "--bootstrap", "50"]) == 0
    analysis = json.loads((output / "selection" / "analysis.json").read_text())
    # The two arms' shared startup trial is one distinct trial.
    assert analysis["distinct_trials"] < 2 * 2
    assert analysis["with_damage"] == analysis["distinct_trials"]
    measured = sorted((output / "selection").glob("damage-seed-*.json"))
    before = [path.read_bytes() for path in measured]
    # A second run measures nothing again.
    assert selection_test.main([*arguments, "--bootstrap", "50"]) == 0
    assert [path.read_bytes() for path in measured] == before


@pytest.mark.smollm2
def test_the_plan_report_stays_partial_before_ten_seeds(
    smoke_run: dict[str, Any],
) -> None:
    from studies import blind_spot_in_loop_report

    assert (
        blind_spot_in_loop_report.main(["--output-dir", str(smoke_run["output"])]) == 0
    )
    text = (smoke_run["output"] / "plan.md").read_text(encoding="utf-8")
    result = json.loads((smoke_run["output"] / "plan.json").read_text(encoding="utf-8"))
    assert "**PARTIAL: 1 of 10 seeds complete.**" in text
    assert result["partial"] and result["complete_seeds"] == [0]
    assert result["arm"] == "teacher-forced-3"
    # One seed gives a per-seed difference at most, but no interval and no test.
    primary = result["comparisons"]["plan"]["accuracy_drop"]
    assert primary["seeds"] + len(primary["seeds_without_matched_counts"]) == 1
    assert "mean" not in primary


@pytest.mark.smollm2
def test_the_study_records_name_no_folder_of_this_machine(
    smoke_run: dict[str, Any],
) -> None:
    state = smoke_run["output"] / "state"
    for arm in ARMS:
        study = json.loads((state / f"study-{arm}-seed-0.json").read_text())
        datasets = [
            value["dataset"]
            for value in study["config"].values()
            if isinstance(value, dict) and "dataset" in value
        ]
        assert len(datasets) == 4
        for dataset in datasets:
            assert dataset.startswith("heretic_teacher_forced_kl/data/prompts/")
    run = json.loads((state / "run.json").read_text())
    home = str(Path.home())
    assert not run["model_path"].startswith(home + "/")
