# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The plan's in-loop comparison (`studies/blind_spot_analysis.py`): the matching
rule on constructed fronts, the tests over seeds, and the old rule
reproducing docs/in-loop's published per-seed differences from its state.
"""

import math
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from studies.blind_spot_analysis import (
    compare,
    seed_difference,
    sign_flip_p_value,
    t_interval,
)

#: The repository's root folder.
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def row(
    arm: str, seed: int, trial: int, refusals: int, kl: float, damage: float
) -> dict[str, Any]:
    """A trial row as `in_loop_analysis.trial_rows` makes it (the fields the comparison uses)."""
    return {
        "arm": arm,
        "seed": seed,
        "trial": trial,
        "refusals": refusals,
        "base_refusals": 8,
        "heretic_kl": kl,
        "accuracy_drop": damage,
        "nll_increase": damage / 10,
    }


def test_the_matching_rule_takes_every_count_below_the_original() -> None:
    rows = [
        # First-token front: 3 refusals (KL 0.05), 6 refusals (KL 0.01); trial 3 is dominated.
        row("first-token", 0, 1, 3, 0.05, 0.20),
        row("first-token", 0, 2, 6, 0.01, 0.05),
        row("first-token", 0, 3, 7, 0.02, 0.90),
        # Teacher-forced front: 4 refusals (KL 0.03), 9 refusals (KL 0.001).
        row("teacher-forced-8", 0, 1, 4, 0.03, 0.10),
        row("teacher-forced-8", 0, 2, 9, 0.001, 0.00),
    ]
    difference = seed_difference(rows, "teacher-forced-8", 0, "accuracy_drop")
    assert difference is not None
    # m = max(3, 4) = 4 and r0 = 8: counts 4, 5, 6, 7.
    assert difference.matched_refusal_counts == (4, 5, 6, 7)
    # Picks: teacher-forced 4/4/4/4 (0.10); first-token 3, 3, 6, 6 (0.20, 0.20, 0.05, 0.05).
    assert difference.difference == pytest.approx(((-0.10) * 2 + 0.05 * 2) / 4)
    old = seed_difference(rows, "teacher-forced-8", 0, "accuracy_drop", old_rule=True)
    assert old is not None
    # The old rule: the counts on either front from m on: 4, 6, 9.
    assert old.matched_refusal_counts == (4, 6, 9)
    assert old.difference == pytest.approx((-0.10 + 0.05 + (0.00 - 0.05)) / 3)


def test_a_seed_whose_fronts_never_go_below_the_original_has_no_difference() -> None:
    rows = [
        row("first-token", 1, 1, 8, 0.01, 0.1),
        row("teacher-forced-8", 1, 1, 9, 0.01, 0.1),
    ]
    assert seed_difference(rows, "teacher-forced-8", 1, "accuracy_drop") is None
    result = compare(rows, "teacher-forced-8", "accuracy_drop")
    assert result["seeds"] == 0 and result["seeds_without_matched_counts"] == [1]


def test_sign_flip_and_t_interval() -> None:
    # All 5 positive: only the two assignments with all signs equal are as extreme.
    assert sign_flip_p_value([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 32)
    assert sign_flip_p_value([1.0, -1.0]) == 1.0
    low, high = t_interval([1.0, 2.0, 3.0], 0.95)
    # Mean 2, standard deviation 1, t(0.975, 2) = 4.302653.
    assert (low, high) == pytest.approx((2 - 4.302653 / 3**0.5, 2 + 4.302653 / 3**0.5))


def test_the_old_rule_reproduces_docs_in_loop() -> None:
    from studies.in_loop_analysis import trial_rows
    from studies.in_loop_state import StudyState

    state = StudyState(REPOSITORY_ROOT / "docs" / "in-loop" / "state")
    rows = trial_rows(state, ["first-token", "teacher-forced-3"], 5)
    result = compare(rows, "teacher-forced-3", "accuracy_drop", old_rule=True)
    # docs/in-loop.md: per seed +0.003, -0.055, +0.004, +0.008, +0.026; mean -0.003; p 1.00.
    differences = [entry["difference"] for entry in result["per_seed"]]
    assert differences == pytest.approx([0.003, -0.055, 0.004, 0.008, 0.026], abs=6e-4)
    assert result["mean"] == pytest.approx(-0.003, abs=5e-4)
    assert result["sign_flip_p"] == 1.0
    nll = compare(rows, "teacher-forced-3", "nll_increase", old_rule=True)
    assert nll["mean"] == pytest.approx(-0.0007, abs=5e-5)
    assert not nll["equivalent_within_margin"]


def test_the_in_loop_study_takes_a_teacher_forced_arm_and_leaves_the_prefix_check_on(
    tmp_path: Path,
) -> None:
    from studies import in_loop

    options = in_loop.parse_arguments(
        [
            "--arms",
            "first-token",
            "--teacher-forced-arm",
            "8:0.05",
            "--prefix-check",
            "--model",
            str(tmp_path),
        ]
    )
    assert options.arms == ["first-token", "teacher-forced-8-target-0.05"]
    arm = in_loop.ARMS["teacher-forced-8-target-0.05"]
    assert arm.launcher_options() == [
        "--scorer",
        "teacher-forced-kl",
        "--kl-tokens",
        "8",
    ]
    assert arm.kl_divergence_target == 0.05
    assert in_loop.measured_tokens(options) == 8
    values = in_loop.heretic_settings_values(options, tmp_path, arm, 0, tmp_path)
    assert "response_prefix" not in values
    configuration = in_loop.run_configuration(options)
    assert configuration["measured_teacher_forced_tokens"] == 8
    assert configuration["prefix_check"] is True
    # Without the new options, the configuration is the one docs/in-loop recorded.
    plain = in_loop.parse_arguments([])
    assert "prefix_check" not in in_loop.run_configuration(plain)
    assert (
        in_loop.heretic_settings_values(plain, tmp_path, arm, 0, tmp_path)[
            "response_prefix"
        ]
        == ""
    )


@pytest.mark.parametrize("text", ["8", "0:0.1", "8:0", "eight:0.1"])
def test_a_malformed_teacher_forced_arm_is_refused(text: str) -> None:
    from studies import in_loop

    with pytest.raises(SystemExit):
        in_loop.parse_arguments(["--teacher-forced-arm", text])


def test_damage_references_of_a_later_session_may_differ_only_by_rounding() -> None:
    from studies.in_loop import same_references

    recorded = {"kept_ids": ["a"], "original_heldout_nll": 0.7006173729896545}
    # The value a later session on the same machine measured for docs/in-loop.
    assert same_references(
        recorded, {**recorded, "original_heldout_nll": 0.7006218433380127}
    )
    assert not same_references(recorded, {**recorded, "original_heldout_nll": 0.7016})
    assert not same_references(recorded, {**recorded, "kept_ids": ["b"]})


def git(folder: Path, *arguments: str) -> str:
    """Runs git in `folder` and returns its output."""
    return subprocess.run(
        ["git", "-C", str(folder), *arguments],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_commit_paths_commits_only_the_given_paths(tmp_path: Path) -> None:
    from studies.study_setup import commit_paths

    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.name", "test")
    git(tmp_path, "config", "user.email", "test@example.invalid")
    state = tmp_path / "state"
    state.mkdir()
    (state / "a.json").write_text("{}\n")
    (tmp_path / "other.txt").write_text("not part of the state\n")
    messages: list[str] = []
    assert commit_paths([state], "state after 1", messages.append)
    assert git(tmp_path, "log", "--format=%s").splitlines() == ["state after 1"]
    assert git(tmp_path, "ls-files").splitlines() == ["state/a.json"]
    # Nothing new counts as committed, without an empty commit.
    assert commit_paths([state], "state after 1 again", messages.append)
    assert len(git(tmp_path, "log", "--format=%s").splitlines()) == 1
    assert messages == []


def test_commit_paths_outside_a_repository_logs_and_returns_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studies import study_setup

    # No pause between the retries, and no repository above the scratch folder.
    monkeypatch.setattr(study_setup.time, "sleep", lambda seconds: None)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    (tmp_path / "a.json").write_text("{}\n")
    messages: list[str] = []
    assert not study_setup.commit_paths([tmp_path / "a.json"], "state", messages.append)
    assert len(messages) == 1 and messages[0].startswith("could not commit")


def test_the_run_record_writes_the_home_folder_as_a_tilde(tmp_path: Path) -> None:
    from studies import in_loop

    inside = Path.home() / "models" / "opener"
    assert in_loop.home_relative(inside) == str(Path("~") / "models" / "opener")
    outside = Path("/opt/models/opener")
    if not outside.resolve().is_relative_to(Path.home().resolve()):
        assert in_loop.home_relative(outside) == str(outside)


def test_the_background_lane_runs_step_3_as_the_plan_fixes_it() -> None:
    script = REPOSITORY_ROOT / "scripts" / "blind_spot_background.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text(encoding="utf-8")
    body = text[text.index("in_loop_lane() {") :]
    command = body[body.index("-m studies.in_loop") : body.index("|| return 1")]
    arguments = shlex.split(command.replace("\\\n", " "))[2:]
    from studies import in_loop

    options = in_loop.parse_arguments(arguments)
    # docs/blind-spot-plan.md: seeds 0 to 9, 30 trials of which 10 random, the
    # opener model, heretic's own prefix check, and the arm that
    # docs/blind-spot.md recorded from step 1 (N = 16, target 0.0038) against
    # heretic's first-token KL at its default target.
    assert (options.model, options.seeds, options.trials, options.startup_trials) == (
        "opener",
        10,
        30,
        10,
    )
    assert options.prefix_check and options.commit and not options.smoke
    assert options.arms == ["first-token", "teacher-forced-16-target-0.0038"]
    assert in_loop.ARMS["first-token"].kl_divergence_target == 0.01
    assert in_loop.measured_tokens(options) == 16
    recorded = (REPOSITORY_ROOT / "docs" / "blind-spot.md").read_text(encoding="utf-8")
    assert "so N = 16" in recorded and "target is 0.0038" in recorded


def test_the_power_figures_reproduce_the_plans_numbers() -> None:
    from studies.blind_spot_in_loop_report import power, power_figures

    # docs/blind-spot-plan.md: with a spread of 0.030 and 10 seeds, the 95 %
    # t-interval's half-width is about 0.021 and one question of 64 is detected
    # with a power of about 0.3.
    (one_question, two_questions) = power_figures("accuracy_drop", 0.030, 5)
    assert one_question["difference"] == 1 / 64
    assert one_question["half_width_at_planned_seeds"] == pytest.approx(
        0.0215, abs=5e-4
    )
    assert one_question["power_at_planned_seeds"] == pytest.approx(0.32, abs=0.03)
    assert one_question["power_now"] < one_question["power_at_planned_seeds"]
    assert (
        two_questions["power_at_planned_seeds"] > one_question["power_at_planned_seeds"]
    )
    # No difference is "detected" at the test's level; no spread gives no power.
    assert power(0.0, 0.030, 10) == pytest.approx(0.05, abs=1e-9)
    assert math.isnan(power(0.01, 0.0, 10)) and math.isnan(power(0.01, 0.03, 1))


def test_complete_seeds_need_both_arms_and_every_measurement(tmp_path: Path) -> None:
    from studies.blind_spot_in_loop_report import complete_seeds
    from studies.in_loop_state import StudyState, write_json_atomically

    state = StudyState(tmp_path)
    study = {"trials": [{"trial": 1}, {"trial": 2}]}
    for arm in ("first-token", "teacher-forced-16"):
        for seed in (0, 1, 2):
            write_json_atomically(state.study_path(arm, seed), study)
            write_json_atomically(
                state.kl_path(arm, seed), {"trials": {"1": {}, "2": {}}}
            )
            write_json_atomically(
                state.damage_path(arm, seed), {"selected": [2], "trials": {"2": {}}}
            )
    # Seed 1 lacks one KL measurement in one arm, seed 2 one damage measurement,
    # seed 3 has no study at all.
    write_json_atomically(state.kl_path("teacher-forced-16", 1), {"trials": {"1": {}}})
    write_json_atomically(
        state.damage_path("first-token", 2), {"selected": [1, 2], "trials": {"2": {}}}
    )
    assert complete_seeds(state, ["first-token", "teacher-forced-16"], 4) == [0]
    assert state.unfinished_parts("teacher-forced-16", 1) == {"kl": "KL of 1 trials"}
    assert state.unfinished_parts("first-token", 3) == {"study": "heretic study"}


def test_the_kl_shape_table_names_the_re_measured_n() -> None:
    from studies.in_loop_report import kl_shape_table

    kl_shape = {
        "arms": [
            {
                "arm": "teacher-forced-16-target-0.0038",
                "seeds": [0],
                "median_ratio_startup": 0.4,
                "median_ratio_guided": 0.5,
                "mean_difference": {"mean": 0.1, "low": 0.0, "high": 0.2},
            }
        ],
        "trials": 30,
        "spearman_first_token_teacher_forced": 0.9,
    }
    text = "\n".join(kl_shape_table(kl_shape, 16))
    assert "teacher-forced KL (N = 16)" in text and "N = 3" not in text
