# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
What the evidence study concludes from its per-model numbers.

Correlations are computed over the abliterated models only: the original is
the reference of every measure (0 KL, 0 damage by construction), so it would
add a point that every measure agrees on. Damage is oriented so that larger
means worse: `accuracy_drop` is 1 - accuracy, `nll_increase` as measured.

- Spearman's rho of every KL variant with every damage measure;
- the partial Spearman correlation of every other variant with the damage,
  given first-token KL (does the variant see damage that first-token KL does
  not?), and of first-token KL given the variant (the converse);
- the paired difference rho(variant) - rho(first-token KL);
- the same Spearman correlations among the models whose first-token KL is at
  most the median, the low-KL region where heretic's optimizer ends up;
- the Spearman correlations among the KL variants themselves;
- "discordant" models: first-token KL in the lowest third, damage in the highest third.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from studies.correlation_statistics import (
    Statistic,
    Vector,
    bootstrap_intervals,
    partial_spearman,
    spearman,
)
from studies.kl_measures import KL_VARIANTS

#: The damage measures, larger is worse.
DAMAGE_MEASURES = ("accuracy_drop", "nll_increase")

#: Readable names of the damage measures.
DAMAGE_LABELS = {
    "accuracy_drop": "accuracy drop (1 - accuracy)",
    "nll_increase": "held-out NLL increase (nats/token)",
}

#: The baseline every other KL variant is compared with.
BASELINE_VARIANT = "first_token"


def sample_columns(models: list[dict[str, Any]]) -> dict[str, Vector]:
    """The KL variants and damage measures of `models`, one column each."""
    columns = {
        variant: np.array([model["kl"][variant] for model in models], dtype=np.float64)
        for variant in KL_VARIANTS
    }
    columns["accuracy_drop"] = np.array(
        [1.0 - model["accuracy"] for model in models], dtype=np.float64
    )
    columns["nll_increase"] = np.array(
        [model["nll_increase"] for model in models], dtype=np.float64
    )
    return columns


def spearman_of(x: str, y: str) -> Statistic:
    """The statistic Spearman(column x, column y)."""
    return lambda columns: spearman(columns[x], columns[y])


def partial_of(x: str, y: str, control: str) -> Statistic:
    """The statistic partial Spearman(column x, column y | column control)."""
    return lambda columns: partial_spearman(columns[x], columns[y], columns[control])


def difference_of(variant: str, damage: str) -> Statistic:
    """The statistic Spearman(variant, damage) - Spearman(first-token KL, damage)."""
    return lambda columns: spearman(columns[variant], columns[damage]) - spearman(
        columns[BASELINE_VARIANT], columns[damage]
    )


def correlation_statistics() -> dict[str, Statistic]:
    """Every bootstrapped statistic of the full sample, by name."""
    statistics: dict[str, Statistic] = {}
    for damage in DAMAGE_MEASURES:
        for variant in KL_VARIANTS:
            statistics[f"spearman/{variant}/{damage}"] = spearman_of(variant, damage)
            if variant == BASELINE_VARIANT:
                continue
            statistics[f"partial_given_first_token/{variant}/{damage}"] = partial_of(
                variant, damage, BASELINE_VARIANT
            )
            statistics[f"first_token_given_variant/{variant}/{damage}"] = partial_of(
                BASELINE_VARIANT, damage, variant
            )
            statistics[f"difference_from_first_token/{variant}/{damage}"] = (
                difference_of(variant, damage)
            )
    return statistics


def low_kl_statistics() -> dict[str, Statistic]:
    """The Spearman correlations bootstrapped within the low first-token KL half."""
    return {
        f"spearman/{variant}/{damage}": spearman_of(variant, damage)
        for damage in DAMAGE_MEASURES
        for variant in KL_VARIANTS
    }


def discordant_models(
    models: list[dict[str, Any]], columns: Mapping[str, Vector]
) -> dict[str, list[dict[str, Any]]]:
    """
    For every damage measure, the models whose first-token KL ranks in the
    lowest third but whose damage ranks in the highest third, with their ranks
    (1 = lowest) under every KL variant.
    """
    count = len(models)
    third = count / 3
    ranks = {
        name: np.argsort(np.argsort(column, kind="mergesort"), kind="mergesort") + 1
        for name, column in columns.items()
    }
    result: dict[str, list[dict[str, Any]]] = {}
    for damage in DAMAGE_MEASURES:
        found = []
        for index, model in enumerate(models):
            if (
                ranks[BASELINE_VARIANT][index] <= third
                and ranks[damage][index] > count - third
            ):
                found.append(
                    {
                        "name": model["name"],
                        "damage": float(columns[damage][index]),
                        "damage_rank": int(ranks[damage][index]),
                        "kl_ranks": {
                            name: int(ranks[name][index]) for name in KL_VARIANTS
                        },
                        "kl": {
                            name: float(columns[name][index]) for name in KL_VARIANTS
                        },
                    }
                )
        result[damage] = found
    return result


def analyze(records: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
    """The study's statistics over its abliterated models (see the module's description)."""
    models = [record for record in records if not record["is_original"]]
    columns = sample_columns(models)
    intervals = bootstrap_intervals(columns, correlation_statistics(), resamples, seed)

    median = float(np.median(columns[BASELINE_VARIANT]))
    low_rows = np.flatnonzero(columns[BASELINE_VARIANT] <= median)
    low_columns = {name: column[low_rows] for name, column in columns.items()}
    low_intervals = (
        bootstrap_intervals(low_columns, low_kl_statistics(), resamples, seed + 1)
        if len(low_rows) >= 3
        else {}
    )

    variant_correlations = {
        first: {
            second: spearman(columns[first], columns[second]) for second in KL_VARIANTS
        }
        for first in KL_VARIANTS
    }
    return {
        "models": len(models),
        "resamples": resamples,
        "confidence": 0.95,
        "statistics": {name: interval.record() for name, interval in intervals.items()},
        "low_first_token_kl_half": {
            "median_first_token_kl": median,
            "models": int(len(low_rows)),
            "statistics": {
                name: interval.record() for name, interval in low_intervals.items()
            },
        },
        "kl_variant_spearman": variant_correlations,
        "discordant_models": discordant_models(models, columns),
    }
