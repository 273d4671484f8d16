# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Rank correlations and their bootstrap confidence intervals, with numpy alone.

Spearman's rho is Pearson's correlation of the average ranks (ties share the
mean of their ranks), which is how `scipy.stats.spearmanr` defines it. The
partial Spearman correlation of x and y given z is the partial Pearson
correlation of their ranks. A statistic is NaN where it is undefined (a
constant input); bootstrap intervals are percentiles over the resamples where
it is defined.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: A 1-D array of floats.
Vector = NDArray[np.float64]

#: A statistic of a sample: it maps the sample's named columns to a number.
Statistic = Callable[[Mapping[str, Vector]], float]


def average_ranks(values: Vector) -> Vector:
    """The ranks 1 .. n of `values`, where tied values share the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Each run of equal values gets the mean of the ranks it spans.
    boundaries = np.flatnonzero(np.diff(sorted_values) != 0) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(values)]))
    sorted_ranks = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = sorted_ranks
    return ranks


def pearson(x: Vector, y: Vector) -> float:
    """Pearson's correlation of `x` and `y`, NaN when either is constant."""
    x_centered = np.asarray(x, dtype=np.float64) - np.mean(x)
    y_centered = np.asarray(y, dtype=np.float64) - np.mean(y)
    denominator = np.sqrt(np.sum(x_centered**2) * np.sum(y_centered**2))
    if denominator == 0 or not np.isfinite(denominator):
        return float("nan")
    return float(np.clip(np.sum(x_centered * y_centered) / denominator, -1.0, 1.0))


def spearman(x: Vector, y: Vector) -> float:
    """Spearman's rank correlation of `x` and `y`, NaN when either is constant."""
    return pearson(average_ranks(x), average_ranks(y))


def partial_spearman(x: Vector, y: Vector, control: Vector) -> float:
    """
    The Spearman correlation of `x` and `y` with `control` held fixed: the
    partial Pearson correlation of the three rank vectors.
    """
    x_ranks, y_ranks, control_ranks = (
        average_ranks(vector) for vector in (x, y, control)
    )
    xy = pearson(x_ranks, y_ranks)
    x_control = pearson(x_ranks, control_ranks)
    y_control = pearson(y_ranks, control_ranks)
    denominator = np.sqrt((1 - x_control**2) * (1 - y_control**2))
    if not np.isfinite(denominator) or denominator == 0 or not np.isfinite(xy):
        return float("nan")
    return float(np.clip((xy - x_control * y_control) / denominator, -1.0, 1.0))


@dataclass(frozen=True)
class Interval:
    """A statistic's estimate on the full sample and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    defined_resamples: int

    def record(self) -> dict[str, float | int | None]:
        """The interval as JSON-ready values (NaN becomes None)."""

        def finite(value: float) -> float | None:
            return float(value) if np.isfinite(value) else None

        return {
            "estimate": finite(self.estimate),
            "low": finite(self.low),
            "high": finite(self.high),
            "defined_resamples": self.defined_resamples,
        }


def bootstrap_intervals(
    columns: Mapping[str, Vector],
    statistics: Mapping[str, Statistic],
    resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """
    Estimates every statistic on the sample and on `resamples` resamples of its
    rows (drawn with replacement, the same rows for every statistic, so that
    differences between statistics are paired), and returns percentile intervals.
    """
    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1:
        raise ValueError("Every column of the sample must have the same length.")
    (length,) = lengths
    if length < 2:
        raise ValueError(
            "A correlation needs at least 2 models; raise --abliterations."
        )
    generator = np.random.default_rng(seed)
    draws = generator.integers(0, length, size=(resamples, length))
    values = {name: np.full(resamples, np.nan) for name in statistics}
    for resample, rows in enumerate(draws):
        sample = {name: column[rows] for name, column in columns.items()}
        for name, statistic in statistics.items():
            values[name][resample] = statistic(sample)
    tail = (1 - confidence) / 2 * 100
    intervals: dict[str, Interval] = {}
    for name, statistic in statistics.items():
        estimate = statistic(columns)
        defined = values[name][np.isfinite(values[name])]
        if len(defined) == 0:
            low = high = float("nan")
        else:
            low, high = (
                float(bound) for bound in np.percentile(defined, [tail, 100 - tail])
            )
        intervals[name] = Interval(estimate, low, high, int(len(defined)))
    return intervals
