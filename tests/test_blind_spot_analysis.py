# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The plan's in-loop comparison (`studies/blind_spot_analysis.py`): the matching
rule on constructed fronts, the tests over seeds, and the old rule
reproducing docs/in-loop's published per-seed differences from its state.
"""

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
