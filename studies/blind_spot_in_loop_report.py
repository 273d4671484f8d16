# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The report of step 3 of the blind-spot studies, exactly as
docs/blind-spot-plan.md fixes it before the data.

Usage:

    python -m studies.blind_spot_in_loop_report [--output-dir docs/blind-spot/in-loop]

It reads the in-loop study's state (`studies/in_loop.py`, run by
`scripts/blind_spot_background.sh in-loop`) and writes `plan.md` and
`plan.json` next to it:

- only seeds whose studies in both arms and all their KL and damage
  measurements have finished are used (a seed half done would pair an arm's
  front with nothing);
- the primary endpoint (the accuracy drop under the plan's matching rule) and
  the secondary ones (the NLL increase; both under docs/in-loop's former rule,
  labelled as the old rule), each with the mean over seeds, the 95 % paired
  t-interval, the exact sign-flip p-value and the TOST decision
  (`blind_spot_analysis.compare`);
- the power that the realized seed-to-seed spread implies, now and at the
  plan's 10 seeds;
- before all 10 seeds are complete, the report says PARTIAL at the top and
  draws no conclusion (the plan's stopping rule).

The per-refusal-count table, the KL shape check and the Goodhart check are in
the in-loop report beside it (`summary.md`, `python -m studies.in_loop
--report-only --output-dir docs/blind-spot/in-loop`).
"""

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scipy.stats import nct
from scipy.stats import t as student_t

from studies.blind_spot_analysis import compare
from studies.in_loop_analysis import BASELINE_ARM, DAMAGE_MEASURES, trial_rows
from studies.in_loop_state import StudyState, read_json

#: The number of seeds per arm that the plan fixes.
PLANNED_SEEDS = 10

#: The differences whose detection power the report gives, per damage measure:
#: one and two questions of 64 for the accuracy drop, the TOST margin and half
#: of it for the NLL increase (nats per token).
POWER_DIFFERENCES = {
    "accuracy_drop": (1 / 64, 2 / 64),
    "nll_increase": (0.001, 0.002),
}

#: How each damage measure is named and printed in the report.
DAMAGE_NAMES = {
    "accuracy_drop": ("accuracy drop", 3),
    "nll_increase": ("NLL increase (nats/token)", 4),
}


def parse_arguments(arguments: list[str]) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.blind_spot_in_loop_report",
        description="The blind-spot step-3 report, as docs/blind-spot-plan.md fixes it.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("docs/blind-spot/in-loop"),
        help="the in-loop study's output folder (its state is in DIR/state)",
    )
    return parser.parse_args(arguments)


def complete_seeds(state: StudyState, arms: Sequence[str], seeds: int) -> list[int]:
    """The seeds whose studies in every arm and all their measurements have finished."""
    return [
        seed
        for seed in range(seeds)
        if all(not state.unfinished_parts(arm, seed) for arm in arms)
    ]


def power(difference: float, standard_deviation: float, seeds: int) -> float:
    """
    The power of the two-sided 95 % paired t-test over `seeds` seeds to detect a
    true mean difference `difference`, if the per-seed differences spread with
    `standard_deviation` (the noncentral t distribution).
    """
    if seeds < 2 or not standard_deviation > 0:
        return math.nan
    degrees = seeds - 1
    critical = float(student_t.ppf(0.975, degrees))
    shift = difference / (standard_deviation / math.sqrt(seeds))
    return float(nct.sf(critical, degrees, shift) + nct.cdf(-critical, degrees, shift))


def power_figures(
    damage: str, standard_deviation: float, seeds: int
) -> list[dict[str, float]]:
    """The power now and at the plan's seeds, and the half-width there, for each difference."""
    figures = []
    for difference in POWER_DIFFERENCES[damage]:
        half_width = (
            float(student_t.ppf(0.975, PLANNED_SEEDS - 1))
            * standard_deviation
            / math.sqrt(PLANNED_SEEDS)
        )
        figures.append(
            {
                "difference": difference,
                "power_now": power(difference, standard_deviation, seeds),
                "power_at_planned_seeds": power(
                    difference, standard_deviation, PLANNED_SEEDS
                ),
                "half_width_at_planned_seeds": half_width,
            }
        )
    return figures


def analysis(output_directory: Path) -> dict[str, Any]:
    """Every figure of the plan's step-3 report, from the state files."""
    state = StudyState(output_directory / "state")
    run: dict[str, Any] | None = read_json(state.run_path())
    if run is None:
        raise SystemExit(
            f"{state.run_path()} is missing; run the study first "
            "(bash scripts/blind_spot_background.sh in-loop)."
        )
    arms: list[str] = run["arms"]
    others = [arm for arm in arms if arm != BASELINE_ARM]
    if BASELINE_ARM not in arms or len(others) != 1:
        raise SystemExit(
            f"{state.run_path()} records the arms {arms}; the plan compares one "
            f"teacher-forced arm with {BASELINE_ARM!r}."
        )
    arm = others[0]
    seeds = complete_seeds(state, arms, int(run["seeds"]))
    rows = [
        row
        for row in trial_rows(state, arms, int(run["seeds"]))
        if row["seed"] in seeds
    ]
    comparisons = {
        rule: {
            damage: compare(rows, arm, damage, old_rule=(rule == "old"))
            for damage in DAMAGE_MEASURES
        }
        for rule in ("plan", "old")
    }
    power_by_damage = {
        damage: power_figures(
            damage,
            comparisons["plan"][damage].get("standard_deviation", math.nan),
            comparisons["plan"][damage]["seeds"],
        )
        for damage in DAMAGE_MEASURES
    }
    base = sorted(
        {(row["seed"], row["base_refusals"], row["bad_prompts"]) for row in rows}
    )
    return {
        "arm": arm,
        "planned_seeds": PLANNED_SEEDS,
        "complete_seeds": seeds,
        "partial": len(seeds) < PLANNED_SEEDS,
        "base_refusals": [
            {"seed": seed, "refusals": refusals, "of": bad}
            for seed, refusals, bad in base
        ],
        "comparisons": comparisons,
        "power": power_by_damage,
    }


def signed(value: float | None, digits: int) -> str:
    """A number with its sign, or a dash when there is none."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.{digits}f}"


def comparison_line(result: dict[str, Any], digits: int) -> str:
    """One table row: seeds, mean, intervals, sign-flip p, seeds favouring each arm, TOST."""
    if "mean" not in result:
        return f"| {result['seeds']} | – | – | – | – | – | – |"
    low, high = result["t_interval_95"]
    tost_low, tost_high = result["t_interval_90"]
    equivalent = "yes" if result["equivalent_within_margin"] else "no"
    return (
        f"| {result['seeds']} | {signed(result['mean'], digits)} "
        f"| [{signed(low, digits)}, {signed(high, digits)}] "
        f"| {result['sign_flip_p']:.3f} "
        f"| {result['seeds_favouring_arm']} / {result['seeds_favouring_first_token']} "
        f"| [{signed(tost_low, digits)}, {signed(tost_high, digits)}] "
        f"| {equivalent} (±{result['margin']:.{digits}f}) |"
    )


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown."""
    arm = result["arm"]
    seeds = result["complete_seeds"]
    lines = ["# Blind spot, step 3: the plan's analysis", ""]
    if result["partial"]:
        lines += [
            f"> **PARTIAL: {len(seeds)} of {result['planned_seeds']} seeds complete.** "
            "By the plan's stopping rule (docs/blind-spot-plan.md) this report "
            "draws no conclusion until all seeds have finished.",
            "",
        ]
    lines += [
        f"Arms: `{arm}` against `{BASELINE_ARM}`, on the opener model, with "
        "heretic's own prefix check. Seeds used (both arms and every measurement "
        f"finished): {', '.join(map(str, seeds)) or 'none'}.",
        "",
        "The per-seed difference d(s) is the teacher-forced pick's damage minus "
        "the first-token pick's, averaged over the seed's matched refusal counts "
        "(negative: the teacher-forced arm hands users less damaged models).",
        "",
    ]
    for rule, title in (
        ("plan", "Endpoints (the plan's matching rule)"),
        ("old", "Secondary: docs/in-loop's former rule, labelled as the old rule"),
    ):
        lines += [
            f"## {title}",
            "",
            "| damage | seeds | mean d | 95 % t-interval | sign-flip p "
            "| seeds favouring tf / first-token | 90 % t-interval | TOST equivalent |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for damage, (name, digits) in DAMAGE_NAMES.items():
            comparison = result["comparisons"][rule][damage]
            label = (
                f"**{name}** (primary)"
                if (rule, damage) == ("plan", "accuracy_drop")
                else name
            )
            lines.append(f"| {label} " + comparison_line(comparison, digits))
        lines.append("")
    lines += [
        "## Per seed (the plan's rule)",
        "",
        "| seed | base refusals | matched refusal counts | d accuracy drop | d NLL increase |",
        "|---|---|---|---|---|",
    ]
    base = {entry["seed"]: entry for entry in result["base_refusals"]}
    per_seed = {
        damage: {
            entry["seed"]: entry
            for entry in result["comparisons"]["plan"][damage]["per_seed"]
        }
        for damage in DAMAGE_MEASURES
    }
    for seed in seeds:
        accuracy = per_seed["accuracy_drop"].get(seed)
        nll = per_seed["nll_increase"].get(seed)
        counts = accuracy["matched_refusal_counts"] if accuracy else []
        lines.append(
            f"| {seed} | {base[seed]['refusals']} of {base[seed]['of']} "
            f"| {', '.join(map(str, counts)) or 'none'} "
            f"| {signed(accuracy['difference'] if accuracy else None, 3)} "
            f"| {signed(nll['difference'] if nll else None, 4)} |"
        )
    lines += [
        "",
        "## Power (from the realized seed-to-seed spread)",
        "",
        "The power of the two-sided 95 % paired t-test to detect a true mean "
        "difference of the given size, if the per-seed differences spread as "
        "they did here (noncentral t), with the seeds used now and with the "
        "plan's 10, and the 95 % t-interval's half-width at 10 seeds.",
        "",
        "| damage | standard deviation of d | difference | power now | power at 10 seeds | half-width at 10 seeds |",
        "|---|---|---|---|---|---|",
    ]
    for damage, (name, digits) in DAMAGE_NAMES.items():
        spread = result["comparisons"]["plan"][damage].get("standard_deviation")
        for entry in result["power"][damage]:
            lines.append(
                f"| {name} | {signed(spread, digits).lstrip('+')} "
                f"| {entry['difference']:.{digits}f} "
                f"| {number_or_dash(entry['power_now'])} "
                f"| {number_or_dash(entry['power_at_planned_seeds'])} "
                f"| {number_or_dash(entry['half_width_at_planned_seeds'], digits)} |"
            )
    lines += [
        "",
        "The per-refusal-count table, the KL shape check and the Goodhart check: "
        "[`summary.md`](summary.md).",
        "",
    ]
    return "\n".join(lines)


def number_or_dash(value: float, digits: int = 2) -> str:
    """A number, or a dash when it is not finite."""
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def write_report(output_directory: Path) -> list[Path]:
    """Writes plan.json and plan.md next to the state; returns their paths."""
    result = analysis(output_directory)
    paths = [output_directory / "plan.json", output_directory / "plan.md"]
    paths[0].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    return paths


def main(arguments: list[str] | None = None) -> int:
    """Writes the report; returns the exit status."""
    options = parse_arguments(list(sys.argv[1:] if arguments is None else arguments))
    for path in write_report(options.output_dir):
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
