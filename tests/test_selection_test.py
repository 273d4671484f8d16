# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The selection test's analysis (`studies/selection_test.py`) on constructed
trials, and its count of docs/in-loop's distinct trials from the committed state.
"""

from pathlib import Path
from typing import Any

import numpy as np

from studies.selection_test import (
    discordant_pairs,
    distinct_trials,
    partial_spearman_two,
)

#: The repository's root folder.
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def trial(
    seed: int, refusals: int, first: float, teacher: float, damage: float
) -> dict[str, Any]:
    """A distinct trial row as `trial_table` makes it."""
    return {
        "seed": seed,
        "refusals": refusals,
        "first_token_kl": first,
        "teacher_forced_kl": teacher,
        "accuracy_drop": damage,
        "nll_increase": damage,
    }


def test_only_discordant_pairs_of_equal_refusals_count() -> None:
    rows = [
        trial(0, 5, 0.01, 0.02, 0.10),
        # Discordant with the first: first-token says lower, teacher-forced higher; damage higher.
        trial(0, 5, 0.005, 0.03, 0.20),
        # Other refusal count: never paired with the two above.
        trial(0, 6, 0.001, 0.05, 0.00),
        # Concordant with the first (both measures say higher).
        trial(1, 5, 0.01, 0.02, 0.10),
        trial(1, 5, 0.02, 0.03, 0.05),
    ]
    pairs = discordant_pairs(rows, "accuracy_drop")
    # Seed 0: one discordant pair, and teacher-forced KL orders its damage correctly.
    assert pairs == {0: [True], 1: []}


def test_partial_correlation_with_two_controls_removes_both() -> None:
    from studies.correlation_statistics import spearman

    generator = np.random.default_rng(1)
    first, refusals = generator.normal(size=400), generator.normal(size=400)
    # Damage and teacher-forced KL share only the controls, with independent noise.
    damage = first + refusals + generator.normal(size=400)
    teacher = first + refusals + generator.normal(size=400)
    assert spearman(teacher, damage) > 0.55
    # Ranks of a sum are not linear in the ranks of its parts, so a little remains.
    assert abs(partial_spearman_two(teacher, damage, [first, refusals])) < 0.2
    # What the controls do not explain is kept.
    shared = generator.normal(size=400)
    assert (
        partial_spearman_two(first + shared, refusals + shared, [first, refusals]) > 0.5
    )


def test_docs_in_loop_has_220_distinct_trials() -> None:
    from studies.in_loop_state import StudyState, read_json

    state = StudyState(REPOSITORY_ROOT / "docs" / "in-loop" / "state")
    entries = distinct_trials(state, read_json(state.run_path()))
    assert len(entries) == 220
    assert sum(len(entry["copies"]) for entry in entries) == 300
    assert sum(entry["damage"] is not None for entry in entries) == 61
