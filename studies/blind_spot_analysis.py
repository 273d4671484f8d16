# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The in-loop comparison of docs/blind-spot-plan.md, as fixed before the data.

It works on the in-loop study's trial rows (`in_loop_analysis.trial_rows`:
arm, seed, trial, refusals, base_refusals, heretic_kl, pareto and the damage
columns) and computes, for one arm against the first-token arm:

- the matched refusal counts of each seed: every integer r with
  m(s) <= r < r0(s), where r0(s) is the unmodified model's refusal count in
  the seed's studies and m(s) the larger of the two fronts' smallest refusal
  counts; at each, each arm's pick is its front's trial with the largest
  refusal count that is at most r;
- the per-seed difference d(s): the unweighted mean over the matched counts of
  the teacher-forced pick's damage minus the first-token pick's;
- over seeds: the mean, the 95 % paired t-interval, the exact two-sided
  sign-flip p-value and the TOST equivalence decision (90 % t-interval inside
  the margin).

With `old_rule`, the counts are docs/in-loop's former headline set (every
refusal count that occurs on either front, from m(s) on), which the plan
keeps as a labelled secondary endpoint.
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from studies.in_loop_analysis import BASELINE_ARM, heretic_pareto_front

#: The TOST margins of the plan: 2 of 64 questions, and 0.002 nats/token.
EQUIVALENCE_MARGINS = {"accuracy_drop": 2 / 64, "nll_increase": 0.002}


@dataclass(frozen=True)
class SeedDifference:
    """One seed's difference of the two arms' picks, and the counts it averages over."""

    seed: int
    difference: float
    matched_refusal_counts: tuple[int, ...]


def front_rows(
    rows: Sequence[dict[str, Any]], arm: str, seed: int
) -> list[dict[str, Any]]:
    """An arm's heretic Pareto front in one seed, fewest refusals first."""
    trials = {
        row["trial"]: row for row in rows if row["arm"] == arm and row["seed"] == seed
    }
    front = heretic_pareto_front(
        [(number, row["refusals"], row["heretic_kl"]) for number, row in trials.items()]
    )
    return [trials[number] for number in front]


def pick(front: Sequence[dict[str, Any]], refusals: int) -> dict[str, Any]:
    """The front's trial with the largest refusal count that is at most `refusals`."""
    eligible = [row for row in front if row["refusals"] <= refusals]
    if not eligible:
        raise ValueError(f"the front offers no trial with at most {refusals} refusals")
    return max(eligible, key=lambda row: row["refusals"])


def base_refusals(rows: Sequence[dict[str, Any]], seed: int) -> int:
    """The unmodified model's refusal count in a seed's studies (the same in every arm)."""
    values = {row["base_refusals"] for row in rows if row["seed"] == seed}
    if len(values) != 1:
        raise ValueError(
            f"seed {seed}: the arms record different base refusals {values}"
        )
    return int(values.pop())


def seed_difference(
    rows: Sequence[dict[str, Any]],
    arm: str,
    seed: int,
    damage: str,
    old_rule: bool = False,
) -> SeedDifference | None:
    """
    d(s) of the plan (or, with `old_rule`, over docs/in-loop's former set of
    counts); None when the seed has no matched refusal count.
    """
    fronts = {name: front_rows(rows, name, seed) for name in (BASELINE_ARM, arm)}
    if any(not front for front in fronts.values()):
        return None
    lowest = max(front[0]["refusals"] for front in fronts.values())
    if old_rule:
        counts = tuple(
            sorted(
                {
                    row["refusals"]
                    for front in fronts.values()
                    for row in front
                    if row["refusals"] >= lowest
                }
            )
        )
    else:
        counts = tuple(range(lowest, base_refusals(rows, seed)))
    if not counts:
        return None
    differences = []
    for count in counts:
        values = [pick(fronts[name], count)[damage] for name in (arm, BASELINE_ARM)]
        if any(value is None for value in values):
            raise ValueError(
                f"seed {seed}: a pick at {count} refusals has no {damage} measured"
            )
        differences.append(values[0] - values[1])
    return SeedDifference(seed, float(np.mean(differences)), counts)


def sign_flip_p_value(values: Sequence[float]) -> float:
    """The exact two-sided sign-flip p-value of the mean (all 2^n sign assignments)."""
    array = np.asarray(values, dtype=np.float64)
    observed = abs(array.mean())
    extreme = 0
    total = 0
    for signs in itertools.product((1.0, -1.0), repeat=len(array)):
        total += 1
        # A tiny tolerance keeps the observed assignment itself counted despite rounding.
        extreme += abs((array * np.array(signs)).mean()) >= observed - 1e-15
    return extreme / total


def t_interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    """The two-sided t-interval of the mean at `confidence` (n - 1 degrees of freedom)."""
    array = np.asarray(values, dtype=np.float64)
    count = len(array)
    if count < 2:
        return (math.nan, math.nan)
    half_width = student_t.ppf(0.5 + confidence / 2, count - 1) * array.std(ddof=1)
    half_width /= math.sqrt(count)
    return (float(array.mean() - half_width), float(array.mean() + half_width))


def compare(
    rows: Sequence[dict[str, Any]], arm: str, damage: str, old_rule: bool = False
) -> dict[str, Any]:
    """Every figure of the plan's comparison of `arm` with the first-token arm on `damage`."""
    seeds = sorted({row["seed"] for row in rows})
    per_seed = [seed_difference(rows, arm, seed, damage, old_rule) for seed in seeds]
    found = [entry for entry in per_seed if entry is not None]
    values = [entry.difference for entry in found]
    margin = EQUIVALENCE_MARGINS[damage]
    result: dict[str, Any] = {
        "arm": arm,
        "damage": damage,
        "rule": "old (docs/in-loop's former headline)" if old_rule else "plan",
        "seeds": len(found),
        "seeds_without_matched_counts": [
            seed for seed, entry in zip(seeds, per_seed, strict=True) if entry is None
        ],
        "per_seed": [
            {
                "seed": entry.seed,
                "difference": entry.difference,
                "matched_refusal_counts": list(entry.matched_refusal_counts),
            }
            for entry in found
        ],
        "margin": margin,
    }
    if len(values) >= 2:
        low, high = t_interval(values, 0.95)
        tost_low, tost_high = t_interval(values, 0.90)
        result.update(
            {
                "mean": float(np.mean(values)),
                "standard_deviation": float(np.std(values, ddof=1)),
                "t_interval_95": [low, high],
                "t_interval_90": [tost_low, tost_high],
                "sign_flip_p": sign_flip_p_value(values),
                "seeds_favouring_arm": sum(value < 0 for value in values),
                "seeds_favouring_first_token": sum(value > 0 for value in values),
                "equivalent_within_margin": bool(
                    -margin < tost_low and tost_high < margin
                ),
                "superior": bool(
                    (high < 0 or low > 0) and sign_flip_p_value(values) < 0.05
                ),
            }
        )
    return result
