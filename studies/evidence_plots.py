# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The evidence study's scatter plots (matplotlib, the optional `plot` extra).

One figure per damage measure, with one panel per KL variant (KL on a
logarithmic axis, damage on a linear one, the abliterated models only), and
one figure of teacher-forced N=16 against first-token KL, coloured by the
held-out NLL increase.

`python -m studies.evidence_plots RESULTS_JSON` redraws the figures of a
finished study next to its `results.json`, without measuring anything again.
"""

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from studies.evidence_analysis import DAMAGE_LABELS, DAMAGE_MEASURES, sample_columns
from studies.kl_measures import KL_VARIANT_LABELS, KL_VARIANTS

#: The colour of each direction scope.
SCOPE_COLORS = {"global": "tab:blue", "per layer": "tab:orange"}


def import_pyplot() -> Any:
    """Imports matplotlib's pyplot with a file-only backend, or explains how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(
            "matplotlib is missing; install the plot extra: "
            "pip install 'heretic-teacher-forced-kl[plot]'."
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def readable_log_axes(axis: Any, both: bool) -> None:
    """
    Labels a logarithmic x axis (and y axis when `both`) at 1, 2 and 5 times
    the powers of ten, so that even a narrow range shows a few plain numbers.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes = [axis.xaxis, axis.yaxis] if both else [axis.xaxis]
    for scale in axes:
        scale.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        scale.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        scale.set_minor_formatter(NullFormatter())


def damage_figure(
    pyplot: Any,
    models: list[dict[str, Any]],
    columns: dict[str, np.ndarray],
    damage: str,
    statistics: dict[str, Any],
    path: Path,
) -> None:
    """Writes one damage measure against every KL variant, one panel each."""
    columns_count = 3
    rows_count = int(np.ceil(len(KL_VARIANTS) / columns_count))
    figure, axes = pyplot.subplots(
        rows_count,
        columns_count,
        figsize=(4.2 * columns_count, 3.6 * rows_count),
        squeeze=False,
    )
    scopes = [model["parameters"]["direction_scope"] for model in models]
    for axis, variant in zip(axes.flat, KL_VARIANTS):
        for scope, color in SCOPE_COLORS.items():
            rows = [index for index, value in enumerate(scopes) if value == scope]
            axis.scatter(
                columns[variant][rows],
                columns[damage][rows],
                s=18,
                color=color,
                label=scope,
            )
        axis.set_xscale("log")
        readable_log_axes(axis, both=False)
        estimate = statistics.get(f"spearman/{variant}/{damage}", {})
        rho = estimate.get("estimate")
        interval = (
            f"ρ = {rho:.2f} [{estimate['low']:.2f}, {estimate['high']:.2f}]"
            if rho is not None and estimate.get("low") is not None
            else "ρ undefined"
        )
        axis.set_title(f"{KL_VARIANT_LABELS[variant]}\n{interval}", fontsize=9)
        axis.set_xlabel("KL divergence (log scale)", fontsize=8)
        axis.set_ylabel(DAMAGE_LABELS[damage], fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(KL_VARIANTS) :]:
        axis.set_visible(False)
    axes.flat[0].legend(title="direction scope", fontsize=7, title_fontsize=7)
    figure.suptitle(
        f"{DAMAGE_LABELS[damage]} against KL divergence ({len(models)} abliterations)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def variant_figure(
    pyplot: Any,
    models: list[dict[str, Any]],
    columns: dict[str, np.ndarray],
    path: Path,
) -> None:
    """Writes teacher-forced N=16 KL against first-token KL, coloured by the NLL increase."""
    figure, axis = pyplot.subplots(figsize=(5.6, 4.6))
    points = axis.scatter(
        columns["first_token"],
        columns["teacher_forced_16"],
        c=columns["nll_increase"],
        cmap="viridis",
        s=24,
    )
    low = float(min(columns["first_token"].min(), columns["teacher_forced_16"].min()))
    high = float(max(columns["first_token"].max(), columns["teacher_forced_16"].max()))
    axis.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
    axis.set_xscale("log")
    axis.set_yscale("log")
    readable_log_axes(axis, both=True)
    axis.set_xlabel("first-token KL")
    axis.set_ylabel("teacher-forced KL, N=16")
    figure.colorbar(points, label=DAMAGE_LABELS["nll_increase"])
    axis.set_title(
        f"Two KL measures of the same {len(models)} abliterations", fontsize=10
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def write_plots(
    records: list[dict[str, Any]], analysis: dict[str, Any], output_directory: Path
) -> list[Path]:
    """Writes every figure into `output_directory` and returns their paths."""
    pyplot = import_pyplot()
    models = [record for record in records if not record["is_original"]]
    columns = sample_columns(models)
    paths: list[Path] = []
    for damage in DAMAGE_MEASURES:
        path = output_directory / f"scatter_{damage}.png"
        damage_figure(pyplot, models, columns, damage, analysis["statistics"], path)
        paths.append(path)
    path = output_directory / "first_token_vs_teacher_forced_16.png"
    variant_figure(pyplot, models, columns, path)
    paths.append(path)
    return paths


def main(arguments: list[str]) -> int:
    """Redraws the figures of the `results.json` given as the only argument."""
    if len(arguments) != 1:
        print("usage: python -m studies.evidence_plots RESULTS_JSON", file=sys.stderr)
        return 2
    path = Path(arguments[0])
    results = json.loads(path.read_text(encoding="utf-8"))
    for written in write_plots(results["models"], results["analysis"], path.parent):
        print(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
