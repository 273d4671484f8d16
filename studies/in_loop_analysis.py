# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The in-loop study's analysis: what a user gets from each arm's Pareto front.

- The Pareto front is heretic 1.4.0's own: the completed trials sorted by
  (refusals, KL), keeping each trial whose KL is below that of every trial
  before it (`heretic.main.run`). KL is the arm's own, as heretic recorded it.
  Every trial on the front has its own refusal count; it is the model a user
  would pick at that refusal count.
- Matched refusal counts: at a refusal count r, a user of a study picks the
  front's trial with the most refusals that are still at most r (the front's
  lowest-KL model with at most r refusals). Two arms of the same seed are
  compared at every refusal count of either front at which both fronts offer
  a pick; the difference of the two picks' damage (other arm minus the
  first-token arm) is averaged over these counts per seed, and the mean over
  seeds gets a bootstrap interval that resamples seeds.
- Goodhart check: over all trials whose damage was measured, pooled over the
  arms, the thresholds of the lowest third of first-token KL and of the
  highest third of each damage measure; per arm, the number of trials in both.
- KL shape check: per arm, the ratio of teacher-forced to first-token KL of
  the guided trials against that of the random startup trials, which every
  trial has (no damage measurement needed).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from studies.correlation_statistics import bootstrap_intervals, spearman
from studies.in_loop_state import StudyState

#: The damage measures, in the order of every table and plot.
DAMAGE_MEASURES = ("accuracy_drop", "nll_increase")

#: Readable names of the damage measures.
DAMAGE_LABELS = {
    "accuracy_drop": "accuracy drop",
    "nll_increase": "held-out NLL increase (nats/token)",
}

#: The arm that every other arm is compared with.
BASELINE_ARM = "first-token"


def heretic_pareto_front(trials: Sequence[tuple[int, int, float]]) -> list[int]:
    """
    heretic 1.4.0's Pareto front of (trial, refusals, KL) triples: sorted by
    refusals and then KL, every trial whose KL is below all before it. Returns
    the trial numbers, fewest refusals first.
    """
    front: list[int] = []
    lowest = float("inf")
    for trial, _, kl in sorted(trials, key=lambda item: (item[1], item[2])):
        if kl < lowest:
            lowest = kl
            front.append(trial)
    return front


def trial_rows(
    state: StudyState, arms: Sequence[str], seeds: int
) -> list[dict[str, Any]]:
    """One row per trial of every finished study, with every measurement made so far."""
    rows: list[dict[str, Any]] = []
    for arm in arms:
        for seed in range(seeds):
            study = state.read_study(arm, seed)
            if study is None:
                continue
            kl = state.read_kl(arm, seed)["trials"]
            damage_record = state.read_damage(arm, seed)
            damage = damage_record["trials"]
            reasons = damage_record.get("reasons", {})
            startup = int(study["config"]["n_startup_trials"])
            front = set(
                heretic_pareto_front(
                    [
                        (trial["trial"], trial["refusals"], trial["heretic_kl"])
                        for trial in study["trials"]
                    ]
                )
            )
            for trial in study["trials"]:
                name = str(trial["trial"])
                measured_kl = kl.get(name, {})
                measured_damage = damage.get(name, {})
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "trial": trial["trial"],
                        "refusals": trial["refusals"],
                        "bad_prompts": trial["bad_prompts"],
                        "base_refusals": study["base_refusals"],
                        "first_token_kl": measured_kl.get("first_token_kl"),
                        "teacher_forced_kl": measured_kl.get("teacher_forced_kl"),
                        "accuracy_drop": measured_damage.get("accuracy_drop"),
                        "nll_increase": measured_damage.get("nll_increase"),
                        "pareto": trial["trial"] in front,
                        "heretic_kl": trial["heretic_kl"],
                        "startup": trial["trial"] <= startup,
                        "damage_reason": reasons.get(name, ""),
                        "direction_scope": trial["direction_scope"],
                    }
                )
    return rows


def study_progress(
    state: StudyState, arms: Sequence[str], seeds: int
) -> dict[str, Any]:
    """Which studies and measurements have finished, for the partial-report notice."""
    planned = finished = kl_done = damage_done = 0
    unfinished: list[str] = []
    for arm in arms:
        for seed in range(seeds):
            planned += 1
            parts = state.unfinished_parts(arm, seed)
            unfinished += [f"{arm} seed {seed}: {text}" for text in parts.values()]
            if "study" in parts:
                continue
            finished += 1
            kl_done += "kl" not in parts
            damage_done += "damage" not in parts
    return {
        "planned_studies": planned,
        "finished_studies": finished,
        "kl_complete": kl_done,
        "damage_complete": damage_done,
        "complete": planned == finished == kl_done == damage_done,
        "unfinished": unfinished,
    }


def study_fronts(
    rows: list[dict[str, Any]],
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Each study's Pareto front, fewest refusals first."""
    fronts: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        if row["pareto"]:
            fronts.setdefault((row["arm"], row["seed"]), []).append(row)
    for front in fronts.values():
        front.sort(key=lambda row: row["refusals"])
    return fronts


def pick_at_most(front: list[dict[str, Any]], refusals: int) -> dict[str, Any] | None:
    """The front's pick with the most refusals that are at most `refusals`, or None."""
    eligible = [row for row in front if row["refusals"] <= refusals]
    return eligible[-1] if eligible else None


def has_damage(row: dict[str, Any] | None) -> bool:
    """Whether a trial's damage has been measured."""
    return row is not None and all(
        row[measure] is not None for measure in DAMAGE_MEASURES
    )


def matched_pairs(
    baseline: list[dict[str, Any]], other: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """
    The two fronts' picks at every refusal count of either front where both
    offer one: the refusal count, both picks and their damage differences.
    """
    counts = sorted({row["refusals"] for row in baseline + other})
    pairs = []
    for count in counts:
        baseline_pick = pick_at_most(baseline, count)
        other_pick = pick_at_most(other, count)
        if baseline_pick is None or other_pick is None:
            continue
        pairs.append(
            {
                "refusals": count,
                "baseline_trial": baseline_pick["trial"],
                "other_trial": other_pick["trial"],
                "baseline_refusals": baseline_pick["refusals"],
                "other_refusals": other_pick["refusals"],
                "exact": baseline_pick["refusals"] == other_pick["refusals"] == count,
                **{
                    f"baseline_{measure}": baseline_pick[measure]
                    for measure in DAMAGE_MEASURES
                },
                **{
                    f"other_{measure}": other_pick[measure]
                    for measure in DAMAGE_MEASURES
                },
                **{
                    f"difference_{measure}": (
                        other_pick[measure] - baseline_pick[measure]
                        if has_damage(baseline_pick) and has_damage(other_pick)
                        else None
                    )
                    for measure in DAMAGE_MEASURES
                },
            }
        )
    return pairs


def mean_interval(
    values: list[float], resamples: int, seed: int
) -> dict[str, float | int | None]:
    """The mean of `values` with a bootstrap interval (None with fewer than 2 values)."""
    if not values:
        return {"estimate": None, "low": None, "high": None, "count": 0}
    if len(values) < 2:
        return {"estimate": float(values[0]), "low": None, "high": None, "count": 1}
    intervals = bootstrap_intervals(
        {"values": np.asarray(values, dtype=np.float64)},
        {"mean": lambda columns: float(np.mean(columns["values"]))},
        resamples,
        seed,
    )
    return {**intervals["mean"].record(), "count": len(values)}


def sign_flip_test(values: list[float]) -> dict[str, Any]:
    """
    How many of the per-seed differences are negative and positive, and the
    exact two-sided sign-flip (paired permutation) p-value of their mean: the
    share of the 2^n sign assignments whose mean is at least as far from zero.
    With n seeds the smallest possible p-value is 2 / 2^n (0.0625 for 5 seeds).
    """
    if not values:
        return {"negative": 0, "positive": 0, "p_value": None, "smallest_p_value": None}
    magnitudes = np.abs(np.asarray(values, dtype=np.float64))
    observed = abs(float(np.mean(values)))
    count = len(values)
    signs = np.array(
        [
            [1 if (pattern >> index) & 1 else -1 for index in range(count)]
            for pattern in range(2**count)
        ],
        dtype=np.float64,
    )
    means = np.abs(signs @ magnitudes) / count
    extreme = int(np.sum(means >= observed - 1e-12))
    return {
        "negative": sum(value < 0 for value in values),
        "positive": sum(value > 0 for value in values),
        "p_value": extreme / 2**count,
        "smallest_p_value": 2 / 2**count if count > 0 else None,
    }


def compare_arms(
    rows: list[dict[str, Any]],
    other_arm: str,
    resamples: int,
    seed: int,
    below_original: bool = False,
) -> dict[str, Any]:
    """
    The other arm's picks against the first-token arm's, paired by seed; with
    `below_original`, only at refusal counts below the original model's (the
    picks that refuse less than the model a user started from).
    """
    fronts = study_fronts(rows)
    seeds = sorted(
        {row["seed"] for row in rows if row["arm"] == BASELINE_ARM}
        & {row["seed"] for row in rows if row["arm"] == other_arm}
    )
    per_seed: list[dict[str, Any]] = []
    by_count: dict[int, list[dict[str, Any]]] = {}
    for study_seed in seeds:
        pairs = matched_pairs(
            fronts.get((BASELINE_ARM, study_seed), []),
            fronts.get((other_arm, study_seed), []),
        )
        if below_original:
            original = min(
                row["base_refusals"]
                for row in rows
                if row["seed"] == study_seed and row["arm"] in (BASELINE_ARM, other_arm)
            )
            pairs = [pair for pair in pairs if pair["refusals"] < original]
        complete = [
            pair
            for pair in pairs
            if all(
                pair[f"difference_{measure}"] is not None for measure in DAMAGE_MEASURES
            )
        ]
        for pair in complete:
            by_count.setdefault(pair["refusals"], []).append(
                {**pair, "seed": study_seed}
            )
        per_seed.append(
            {
                "seed": study_seed,
                "pairs": pairs,
                "matched_counts": len(complete),
                "damage_complete": len(complete) == len(pairs),
                **{
                    f"mean_difference_{measure}": (
                        float(
                            np.mean(
                                [pair[f"difference_{measure}"] for pair in complete]
                            )
                        )
                        if complete
                        else None
                    )
                    for measure in DAMAGE_MEASURES
                },
            }
        )
    seed_differences = {
        measure: [
            entry[f"mean_difference_{measure}"]
            for entry in per_seed
            if entry[f"mean_difference_{measure}"] is not None
        ]
        for measure in DAMAGE_MEASURES
    }
    overall = {
        measure: {
            **mean_interval(seed_differences[measure], resamples, seed),
            **sign_flip_test(seed_differences[measure]),
        }
        for measure in DAMAGE_MEASURES
    }
    counts = []
    for count in sorted(by_count):
        pairs = by_count[count]
        counts.append(
            {
                "refusals": count,
                "seeds": len(pairs),
                "exact": sum(pair["exact"] for pair in pairs),
                **{
                    f"baseline_{measure}": float(
                        np.mean([pair[f"baseline_{measure}"] for pair in pairs])
                    )
                    for measure in DAMAGE_MEASURES
                },
                **{
                    f"other_{measure}": float(
                        np.mean([pair[f"other_{measure}"] for pair in pairs])
                    )
                    for measure in DAMAGE_MEASURES
                },
                **{
                    f"difference_{measure}": mean_interval(
                        [pair[f"difference_{measure}"] for pair in pairs],
                        resamples,
                        seed,
                    )
                    for measure in DAMAGE_MEASURES
                },
            }
        )
    return {
        "baseline": BASELINE_ARM,
        "other": other_arm,
        "below_original": below_original,
        "seeds": seeds,
        "per_seed": per_seed,
        "overall": overall,
        "by_refusals": counts,
    }


def arm_summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arm: the fronts' sizes and ranges, and the search's KL and refusals."""
    fronts = study_fronts(rows)
    summaries = []
    for arm in dict.fromkeys(row["arm"] for row in rows):
        arm_rows = [row for row in rows if row["arm"] == arm]
        seeds = sorted({row["seed"] for row in arm_rows})
        arm_fronts = [fronts.get((arm, seed), []) for seed in seeds]
        guided = [row for row in arm_rows if not row["startup"]]

        def median(values: list[float | None]) -> float | None:
            present = [value for value in values if value is not None]
            return float(np.median(present)) if present else None

        fewest = [front[0] for front in arm_fronts if front]
        summaries.append(
            {
                "arm": arm,
                "studies": len(seeds),
                "trials": len(arm_rows),
                "mean_front_size": float(np.mean([len(front) for front in arm_fronts]))
                if arm_fronts
                else None,
                "median_refusals_guided": median([row["refusals"] for row in guided]),
                "median_first_token_kl_guided": median(
                    [row["first_token_kl"] for row in guided]
                ),
                "median_teacher_forced_kl_guided": median(
                    [row["teacher_forced_kl"] for row in guided]
                ),
                "mean_fewest_refusals": float(
                    np.mean([row["refusals"] for row in fewest])
                )
                if fewest
                else None,
                **{
                    f"mean_{measure}_at_fewest_refusals": (
                        float(np.mean([row[measure] for row in fewest]))
                        if fewest and all(has_damage(row) for row in fewest)
                        else None
                    )
                    for measure in DAMAGE_MEASURES
                },
                "damage_measured": sum(has_damage(row) for row in arm_rows),
            }
        )
    return summaries


def goodhart_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """
    Over every trial with measured damage, pooled over the arms: per arm and
    damage measure, how many have first-token KL in the lowest third and
    damage in the highest third (and, for contrast, the same with
    teacher-forced KL in its lowest third).
    """
    measured = [
        row
        for row in rows
        if has_damage(row)
        and row["first_token_kl"] is not None
        and row["teacher_forced_kl"] is not None
    ]
    if len(measured) < 3:
        return {"measured": len(measured), "thresholds": {}, "arms": []}
    first_token = np.array([row["first_token_kl"] for row in measured])
    teacher_forced = np.array([row["teacher_forced_kl"] for row in measured])
    thresholds: dict[str, float] = {
        "first_token_kl_low": float(np.quantile(first_token, 1 / 3)),
        "teacher_forced_kl_low": float(np.quantile(teacher_forced, 1 / 3)),
    }
    for measure in DAMAGE_MEASURES:
        values = np.array([row[measure] for row in measured])
        thresholds[f"{measure}_high"] = float(np.quantile(values, 2 / 3))
    arms = []
    for arm in dict.fromkeys(row["arm"] for row in measured):
        arm_rows = [row for row in measured if row["arm"] == arm]
        entry: dict[str, Any] = {
            "arm": arm,
            "measured": len(arm_rows),
            "low_first_token_kl": sum(
                row["first_token_kl"] <= thresholds["first_token_kl_low"]
                for row in arm_rows
            ),
            "low_teacher_forced_kl": sum(
                row["teacher_forced_kl"] <= thresholds["teacher_forced_kl_low"]
                for row in arm_rows
            ),
        }
        for measure in DAMAGE_MEASURES:
            high = thresholds[f"{measure}_high"]
            entry[f"high_{measure}"] = sum(row[measure] > high for row in arm_rows)
            entry[f"discordant_first_token_{measure}"] = sum(
                row["first_token_kl"] <= thresholds["first_token_kl_low"]
                and row[measure] > high
                for row in arm_rows
            )
            entry[f"discordant_teacher_forced_{measure}"] = sum(
                row["teacher_forced_kl"] <= thresholds["teacher_forced_kl_low"]
                and row[measure] > high
                for row in arm_rows
            )
        arms.append(entry)
    correlations = {
        f"{variant}/{measure}": spearman(
            np.array([row[variant] for row in measured]),
            np.array([row[measure] for row in measured]),
        )
        for variant in ("first_token_kl", "teacher_forced_kl")
        for measure in DAMAGE_MEASURES
    }
    return {
        "measured": len(measured),
        "thresholds": thresholds,
        "arms": arms,
        "spearman": {
            name: (None if not np.isfinite(value) else value)
            for name, value in correlations.items()
        },
    }


def kl_shape_check(
    rows: list[dict[str, Any]], resamples: int, seed: int
) -> dict[str, Any]:
    """
    Whether a search's guided trials move damage past the first token: per
    arm, the ratio of teacher-forced KL (N = 3) to first-token KL of every
    trial with both, its median over the random startup trials (the same
    models in every arm of a seed) and over the guided trials, and per seed
    the guided median minus the startup median, averaged over seeds with a
    bootstrap interval. A search that exploits first-token KL's blind spot
    finds models whose later positions diverge more than their first, which
    raises the ratio of its guided trials.
    """
    arms = []
    for arm in dict.fromkeys(row["arm"] for row in rows):
        ratios: dict[tuple[int, bool], list[float]] = {}
        for row in rows:
            first_token = row["first_token_kl"]
            teacher_forced = row["teacher_forced_kl"]
            if row["arm"] != arm or first_token is None or teacher_forced is None:
                continue
            if first_token <= 0:
                continue
            ratios.setdefault((row["seed"], row["startup"]), []).append(
                teacher_forced / first_token
            )
        seeds = sorted(
            {
                study_seed
                for study_seed, _ in ratios
                if (study_seed, True) in ratios and (study_seed, False) in ratios
            }
        )
        differences = [
            float(
                np.median(ratios[(study_seed, False)])
                - np.median(ratios[(study_seed, True)])
            )
            for study_seed in seeds
        ]

        def pooled(startup: bool) -> float | None:
            values = [
                value
                for (_, is_startup), entries in ratios.items()
                if is_startup == startup
                for value in entries
            ]
            return float(np.median(values)) if values else None

        arms.append(
            {
                "arm": arm,
                "seeds": seeds,
                "median_ratio_startup": pooled(True),
                "median_ratio_guided": pooled(False),
                "per_seed_difference": dict(zip(seeds, differences)),
                "mean_difference": mean_interval(differences, resamples, seed),
            }
        )
    both = [
        row
        for row in rows
        if row["first_token_kl"] is not None and row["teacher_forced_kl"] is not None
    ]
    agreement = (
        spearman(
            np.array([row["first_token_kl"] for row in both]),
            np.array([row["teacher_forced_kl"] for row in both]),
        )
        if len(both) >= 3
        else float("nan")
    )
    return {
        "arms": arms,
        "trials": len(both),
        "spearman_first_token_teacher_forced": (
            float(agreement) if np.isfinite(agreement) else None
        ),
    }


def startup_agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """
    Whether the random startup trials of a seed coincide across arms: same
    first-token KL re-measured for the same trial number (the parameters are
    the same exactly when the abliterated models are).
    """
    by_key: dict[tuple[int, int], set[float]] = {}
    for row in rows:
        if row["startup"] and row["first_token_kl"] is not None:
            by_key.setdefault((row["seed"], row["trial"]), set()).add(
                round(row["first_token_kl"], 9)
            )
    shared = [values for values in by_key.values()]
    return {
        "startup_trials": len(shared),
        "identical_across_arms": sum(len(values) == 1 for values in shared),
    }


def analyze(
    rows: list[dict[str, Any]], arms: Sequence[str], resamples: int, seed: int = 0
) -> dict[str, Any]:
    """Every comparison, summary and check of the report."""
    present = [arm for arm in arms if any(row["arm"] == arm for row in rows)]
    others = [arm for arm in present if arm != BASELINE_ARM and BASELINE_ARM in present]
    return {
        "arms": arm_summaries(rows),
        "comparisons": [compare_arms(rows, arm, resamples, seed) for arm in others],
        "comparisons_below_original": [
            compare_arms(rows, arm, resamples, seed, below_original=True)
            for arm in others
        ],
        "goodhart": goodhart_check(rows),
        "kl_shape": kl_shape_check(rows, resamples, seed),
        "startup_agreement": startup_agreement(rows),
    }
