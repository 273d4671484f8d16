# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The `--plot` image of `heretic-kl compare`: mean KL divergence by position, with its spread.

matplotlib is the optional extra `plot`; `require_matplotlib` checks for it
before any model is loaded.
"""

import math
from pathlib import Path
from typing import Any

from ...report import ComparisonReport

#: The one-line fix printed when matplotlib is missing.
INSTALL_HINT = "pip install 'heretic-teacher-forced-kl[plot]'"


class PlotUnavailableError(Exception):
    """matplotlib is not installed."""


def require_matplotlib() -> Any:
    """Imports matplotlib's object-oriented interface with a non-interactive backend."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError(
            f"--plot needs matplotlib, which is not installed; run {INSTALL_HINT}."
        ) from None
    return Figure


def drawable(value: float) -> float:
    """`value`, or NaN (a gap in the plot) where it is infinite, which no axis can show."""
    return value if math.isfinite(value) else math.nan


def write_plot(report: ComparisonReport, path: Path, title: str) -> None:
    """
    Writes a PNG of the mean KL divergence at each position with mean ± standard
    error as a band, and the median with the interquartile range as a lighter band.
    Infinite values (a candidate whose logits are NaN or infinite) are gaps.
    """
    figure_class = require_matplotlib()
    positions = [statistics.position for statistics in report.positions]
    means = [drawable(statistics.mean_kl) for statistics in report.positions]
    errors = [
        0.0
        if not math.isfinite(statistics.mean_kl_standard_error)
        else statistics.mean_kl_standard_error
        for statistics in report.positions
    ]
    medians = [drawable(statistics.median_kl) for statistics in report.positions]
    first_quartiles = [
        drawable(statistics.first_quartile_kl) for statistics in report.positions
    ]
    third_quartiles = [
        drawable(statistics.third_quartile_kl) for statistics in report.positions
    ]

    figure = figure_class(figsize=(8, 4.5), dpi=120)
    axes = figure.add_subplot()
    axes.fill_between(
        positions,
        first_quartiles,
        third_quartiles,
        color="tab:orange",
        alpha=0.15,
        label="interquartile range",
    )
    axes.plot(
        positions,
        medians,
        color="tab:orange",
        linestyle="--",
        marker=".",
        label="median",
    )
    axes.fill_between(
        positions,
        [mean - error for mean, error in zip(means, errors)],
        [mean + error for mean, error in zip(means, errors)],
        color="tab:blue",
        alpha=0.25,
        label="mean ± standard error",
    )
    axes.plot(positions, means, color="tab:blue", marker="o", label="mean")
    if math.isfinite(report.mean_kl):
        axes.axhline(
            report.mean_kl,
            color="tab:gray",
            linestyle=":",
            label="mean over all positions",
        )
    if any(math.isinf(statistics.mean_kl) for statistics in report.positions):
        title += " (positions with infinite mean KL not drawn)"
    axes.set_xlabel("Position in the original's reference continuation")
    axes.set_ylabel("KL(original ‖ candidate), nats")
    axes.set_title(title, fontsize=10)
    axes.set_xlim(positions[0] - 0.2, positions[-1] + 0.2)
    axes.set_ylim(bottom=0)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
