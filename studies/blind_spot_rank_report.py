# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The blind-spot rank study's side-by-side table: the opener model against the
original SmolLM2, from the committed state of `studies/blind_spot_rank.py`.

Usage:

    python -m studies.blind_spot_rank_report [--directory docs/blind-spot]
        [--opener-tokens 2] [--bootstrap 2000]

It reads `rank-opener/state/models.jsonl` and `rank-original/state/models.jsonl`
(so it works on a run that is still going, and says so), and writes
`rank.md` and `rank.json` into the directory: for each model, Spearman ρ of
every KL variant with the accuracy drop and the NLL increase, the partial ρ
given first-token KL and the difference from first-token KL, with bootstrap
intervals (`studies/evidence_analysis.py`), over the same abliteration draws
in both models. For the models that record teacher-forced KL position by
position (every opener model; the original's models 41 to 60), two derived
variants, labelled as such: the KL at the first position after the opener
(what first-token KL would measure had heretic stripped the opener) and the
teacher-forced mean over the positions after the opener, up to 16. Also the
median ratio of teacher-forced KL to first-token KL, which sets the in-loop
target (docs/blind-spot-plan.md).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from studies.correlation_statistics import bootstrap_intervals
from studies.evidence_analysis import (
    BASELINE_VARIANT,
    DAMAGE_MEASURES,
    analyze,
    difference_of,
    partial_of,
    spearman_of,
)
from studies.kl_measures import KL_VARIANT_LABELS, KL_VARIANTS, TEACHER_FORCED_TOKENS

#: The models of the study, by the name of their folder.
MODELS = ("opener", "original")

#: The derived variants, computed from the per-position record.
AFTER_OPENER_FIRST = "after_opener_first_position"
AFTER_OPENER_MEAN = "after_opener_mean_to_16"


def parse_arguments(arguments: list[str]) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.blind_spot_rank_report",
        description="Side-by-side table of the blind-spot rank study.",
    )
    parser.add_argument("--directory", type=Path, default=Path("docs/blind-spot"))
    parser.add_argument(
        "--opener-tokens",
        type=int,
        default=None,
        help="positions the opener fills (default: from preconditions.json)",
    )
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(arguments)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The measured models of a state file, in order of name (a torn last line is ignored)."""
    records: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record["name"]] = record
    return [records[name] for name in sorted(records)]


def opener_token_count(directory: Path) -> int | None:
    """The opener's positions, from the precondition check's most common first tokens."""
    path = directory / "preconditions.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text(encoding="utf-8"))
    count: int | None = results.get("opener_positions")
    return count


def derived_variants(
    models: list[dict[str, Any]], opener_tokens: int
) -> dict[str, np.ndarray]:
    """The two after-opener variants of the models that record every position."""
    first = []
    mean = []
    for model in models:
        positions = [
            value
            for value in model["teacher_forced_by_position"][opener_tokens:]
            if value is not None
        ]
        first.append(positions[0])
        mean.append(float(np.mean(positions)))
    return {
        AFTER_OPENER_FIRST: np.array(first, dtype=np.float64),
        AFTER_OPENER_MEAN: np.array(mean, dtype=np.float64),
    }


def derived_statistics(
    models: list[dict[str, Any]], opener_tokens: int, resamples: int, seed: int
) -> dict[str, Any]:
    """Spearman, partial and difference statistics of the after-opener variants."""
    columns: dict[str, np.ndarray] = {
        BASELINE_VARIANT: np.array([model["kl"]["first_token"] for model in models]),
        "accuracy_drop": np.array([1.0 - model["accuracy"] for model in models]),
        "nll_increase": np.array([model["nll_increase"] for model in models]),
        **derived_variants(models, opener_tokens),
    }
    statistics = {}
    for damage in DAMAGE_MEASURES:
        for variant in (AFTER_OPENER_FIRST, AFTER_OPENER_MEAN):
            statistics[f"spearman/{variant}/{damage}"] = spearman_of(variant, damage)
            statistics[f"partial_given_first_token/{variant}/{damage}"] = partial_of(
                variant, damage, BASELINE_VARIANT
            )
            statistics[f"difference_from_first_token/{variant}/{damage}"] = (
                difference_of(variant, damage)
            )
    intervals = bootstrap_intervals(columns, statistics, resamples, seed)
    return {
        "models": len(models),
        "opener_tokens": opener_tokens,
        "statistics": {name: interval.record() for name, interval in intervals.items()},
    }


def interval(statistic: dict[str, Any] | None) -> str:
    """A statistic as "+0.81 [+0.65, +0.90]"."""
    if statistic is None or statistic["estimate"] is None:
        return "—"
    text = f"{statistic['estimate']:+.2f}"
    if statistic["low"] is not None:
        text += f" [{statistic['low']:+.2f}, {statistic['high']:+.2f}]"
    return text


def ratio_medians(models: list[dict[str, Any]]) -> dict[str, float]:
    """The median ratio of teacher-forced KL at each N to first-token KL."""
    return {
        f"teacher_forced_{tokens}": float(
            np.median(
                [
                    model["kl"][f"teacher_forced_{tokens}"] / model["kl"]["first_token"]
                    for model in models
                ]
            )
        )
        for tokens in TEACHER_FORCED_TOKENS
    }


def report(options: argparse.Namespace) -> dict[str, Any]:
    """Computes every table and writes rank.md and rank.json."""
    directory: Path = options.directory
    opener_tokens = options.opener_tokens or opener_token_count(directory)
    result: dict[str, Any] = {"opener_tokens": opener_tokens, "models": {}}
    common: set[str] | None = None
    records = {}
    for name in MODELS:
        records[name] = [
            record
            for record in read_records(
                directory / f"rank-{name}" / "state" / "models.jsonl"
            )
            if not record["is_original"]
        ]
        names = {record["name"] for record in records[name]}
        common = names if common is None else common & names
    assert common is not None
    for name in MODELS:
        # Both columns cover the same abliteration draws while a run is going.
        models = [record for record in records[name] if record["name"] in common]
        entry: dict[str, Any] = {"abliterations": len(models)}
        if len(models) >= 4:
            entry["analysis"] = analyze(
                [{**model, "is_original": False} for model in models],
                options.bootstrap,
                options.seed,
            )
            entry["ratio_to_first_token"] = ratio_medians(models)
            with_positions = [
                model for model in models if "teacher_forced_by_position" in model
            ]
            if opener_tokens is not None and len(with_positions) >= 4:
                entry["after_opener"] = derived_statistics(
                    with_positions, opener_tokens, options.bootstrap, options.seed
                )
        result["models"][name] = entry
    result["abliterations_in_both"] = len(common)
    (directory / "rank.json").write_text(json.dumps(result, indent=2) + "\n")
    (directory / "rank.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The tables in Markdown."""
    count = result["abliterations_in_both"]
    lines = [
        f"Rank study over the {count} abliteration draws measured on both models so far"
        + (" (**PARTIAL**: the plan is 60)" if count < 60 else "")
        + ". Spearman ρ with 95 % bootstrap intervals over models.",
        "",
    ]
    analyses = {name: entry.get("analysis") for name, entry in result["models"].items()}
    if any(value is None for value in analyses.values()):
        return "\n".join([*lines, "Too few models measured on both so far."]) + "\n"
    for damage in DAMAGE_MEASURES:
        lines += [
            f"### {damage.replace('_', ' ')}",
            "",
            "| KL variant | ρ, opener model | ρ, original | partial ρ given first-token, "
            "opener | … original | ρ − ρ(first-token), opener | … original |",
            "|---|---|---|---|---|---|---|",
        ]
        for variant in KL_VARIANTS:
            cells = [KL_VARIANT_LABELS[variant]]
            for kind in (
                "spearman",
                "partial_given_first_token",
                "difference_from_first_token",
            ):
                for name in MODELS:
                    statistics = analyses[name]["statistics"]  # type: ignore[index]
                    cells.append(interval(statistics.get(f"{kind}/{variant}/{damage}")))
            lines.append("| " + " | ".join(cells) + " |")
        opener = result["models"]["opener"].get("after_opener")
        if opener is not None:
            for variant, label in (
                (
                    AFTER_OPENER_FIRST,
                    "KL at the first position after the opener (derived)",
                ),
                (
                    AFTER_OPENER_MEAN,
                    "teacher-forced mean after the opener, to 16 (derived)",
                ),
            ):
                statistics = opener["statistics"]
                cells = [label]
                for kind in (
                    "spearman",
                    "partial_given_first_token",
                    "difference_from_first_token",
                ):
                    cells += [
                        interval(statistics.get(f"{kind}/{variant}/{damage}")),
                        "—",
                    ]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Median ratio of teacher-forced KL to first-token KL:", ""]
    lines += ["| N | opener model | original |", "|---|---|---|"]
    for tokens in TEACHER_FORCED_TOKENS:
        key = f"teacher_forced_{tokens}"
        lines.append(
            f"| {tokens} | {result['models']['opener']['ratio_to_first_token'][key]:.2f} "
            f"| {result['models']['original']['ratio_to_first_token'][key]:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(arguments: list[str] | None = None) -> int:
    """Writes the report; returns the exit status."""
    options = parse_arguments(list(sys.argv[1:] if arguments is None else arguments))
    result = report(options)
    print(
        f"{result['abliterations_in_both']} abliterations in both models; wrote rank.md"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
