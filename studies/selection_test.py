# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The selection test on docs/in-loop's trials (step 2 of issue 17): where the two
measures order two trials of the same seed and refusal count differently,
which one orders their damage correctly? No new heretic runs.

Usage:

    python -m studies.selection_test [--commit] [--report-only]
        [--in-loop-dir docs/in-loop] [--smoke --model PATH]

1. Every distinct trial of the in-loop study (parameter-identical trials of the
   two arms of a seed are one trial, measured once and counted once) gets its
   damage: taken from the in-loop study's own damage records where one of its
   copies has one, measured otherwise with the in-loop study's own code
   (`in_loop.Measurer`, the recorded references, which it checks) and written
   at once to `<in-loop-dir>/selection/damage-seed-<seed>.json` (with
   `--commit`, committed after every measurement). Rerunning resumes.
2. The analysis of docs/blind-spot-plan.md, step 2 (`selection_analysis`),
   written to `<in-loop-dir>/selection/summary.md` and `analysis.json`.

`--smoke` runs on the in-loop smoke study's output (`--in-loop-dir`), with
the in-loop smoke sizes (CI: `tests/test_in_loop_smoke.py`).
"""

import argparse
import json
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from scipy.stats import t as student_t

from studies import in_loop
from studies.correlation_statistics import average_ranks, pearson
from studies.in_loop_state import StudyState, read_json, write_json_atomically
from studies.study_setup import commit_paths, resolve_model_path

#: The damage measures, larger is worse.
DAMAGE_MEASURES = ("accuracy_drop", "nll_increase")


def parse_arguments(arguments: list[str]) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.selection_test",
        description="Which measure orders the damage of trials that heretic "
        "cannot tell apart by refusals?",
    )
    parser.add_argument("--in-loop-dir", type=Path, default=Path("docs/in-loop"))
    parser.add_argument(
        "--model", default="smollm2", help="the in-loop study's --model"
    )
    parser.add_argument("--smoke", action="store_true", help="the in-loop smoke sizes")
    parser.add_argument(
        "--commit", action="store_true", help="commit after every measurement"
    )
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--bootstrap", type=int, default=2000)
    return parser.parse_args(arguments)


def distinct_trials(state: StudyState, run: dict[str, Any]) -> list[dict[str, Any]]:
    """
    One entry per distinct trial of every finished study: the seed, the first
    copy's arm and trial, every copy, refusals, both re-measured KL values and
    the in-loop study's own damage measurement of any copy, if one exists.
    """
    result: list[dict[str, Any]] = []
    for seed in range(run["seeds"]):
        entries: list[dict[str, Any]] = []
        for arm in run["arms"]:
            study = state.read_study(arm, seed)
            if study is None:
                continue
            kl = state.read_kl(arm, seed)["trials"]
            damage = state.read_damage(arm, seed)["trials"]
            for trial in study["trials"]:
                name = str(trial["trial"])
                match = next(
                    (
                        entry
                        for entry in entries
                        if in_loop.same_model(entry["trial_record"], trial)
                    ),
                    None,
                )
                measured = damage.get(name)
                if match is not None:
                    match["copies"].append(f"{arm}/{name}")
                    if match["damage"] is None and measured is not None:
                        match["damage"] = measured
                    continue
                entries.append(
                    {
                        "seed": seed,
                        "key": f"{arm}/{name}",
                        "arm": arm,
                        "copies": [f"{arm}/{name}"],
                        "trial_record": trial,
                        "refusals": trial["refusals"],
                        "first_token_kl": kl.get(name, {}).get("first_token_kl"),
                        "teacher_forced_kl": kl.get(name, {}).get("teacher_forced_kl"),
                        "damage": measured,
                    }
                )
        result += entries
    return result


def selection_path(directory: Path, seed: int) -> Path:
    """The state file of the selection test's own damage measurements of a seed."""
    return directory / "selection" / f"damage-seed-{seed}.json"


def measure_missing(
    options: argparse.Namespace, in_loop_options: argparse.Namespace
) -> int:
    """Measures the damage of every distinct trial that has none; returns how many were measured."""
    directory: Path = options.in_loop_dir
    state = StudyState(directory / "state")
    run: dict[str, Any] = read_json(state.run_path())
    configuration = in_loop.run_configuration(in_loop_options)
    if run["configuration"] != configuration:
        raise SystemExit(
            f"{state.run_path()} records other settings than --model/--smoke give; "
            "pass the in-loop study's own."
        )
    measurer: in_loop.Measurer | None = None
    measured = 0
    for entry in distinct_trials(state, run):
        if entry["damage"] is not None:
            continue
        path = selection_path(directory, entry["seed"])
        record = read_json(path) or {"trials": {}}
        if entry["key"] in record["trials"]:
            continue
        if measurer is None:
            model_path = resolve_model_path(in_loop_options.model)
            measurer = in_loop.Measurer(in_loop_options, model_path, state)
        start = time.perf_counter()
        # The references are built from the original model, before the trial is applied.
        measurer.damage_references()
        measurer.apply(entry["seed"], entry["trial_record"])
        values: dict[str, Any] = dict(measurer.measure_damage())
        values["seconds"] = time.perf_counter() - start
        values["copies"] = entry["copies"]
        record["trials"][entry["key"]] = values
        write_json_atomically(path, record)
        measured += 1
        in_loop.log(
            f"seed {entry['seed']}, {entry['key']} (refusals {entry['refusals']}): "
            f"accuracy drop {values['accuracy_drop']:.3f}, NLL increase "
            f"{values['nll_increase']:.4f} ({values['seconds']:.1f} s)"
        )
        if options.commit:
            commit_paths(
                [path],
                f"Selection test: damage of in-loop trial {entry['key']} of seed {entry['seed']}",
                in_loop.log,
            )
    return measured


def trial_table(directory: Path) -> list[dict[str, Any]]:
    """Every distinct trial with its refusals, both KL values and its damage (None where missing)."""
    state = StudyState(directory / "state")
    run: dict[str, Any] = read_json(state.run_path())
    rows = []
    own: dict[int, dict[str, Any]] = {}
    for entry in distinct_trials(state, run):
        seed = entry["seed"]
        if seed not in own:
            own[seed] = (read_json(selection_path(directory, seed)) or {"trials": {}})[
                "trials"
            ]
        damage = entry["damage"] or own[seed].get(entry["key"])
        rows.append(
            {
                "seed": seed,
                "key": entry["key"],
                "copies": len(entry["copies"]),
                "refusals": entry["refusals"],
                "first_token_kl": entry["first_token_kl"],
                "teacher_forced_kl": entry["teacher_forced_kl"],
                **{
                    measure: None if damage is None else damage[measure]
                    for measure in DAMAGE_MEASURES
                },
            }
        )
    return rows


def discordant_pairs(rows: list[dict[str, Any]], damage: str) -> dict[int, list[bool]]:
    """
    Per seed, one entry per discordant pair with a strict damage order: whether
    teacher-forced KL orders its damage correctly (plan, step 2).
    """
    result: dict[int, list[bool]] = {}
    for seed in sorted({row["seed"] for row in rows}):
        outcomes: list[bool] = []
        trials = [row for row in rows if row["seed"] == seed]
        for first, second in combinations(trials, 2):
            if first["refusals"] != second["refusals"]:
                continue
            first_token = first["first_token_kl"] - second["first_token_kl"]
            teacher_forced = first["teacher_forced_kl"] - second["teacher_forced_kl"]
            if first_token == 0 or teacher_forced == 0:
                continue
            if (first_token > 0) == (teacher_forced > 0):
                continue
            damage_difference = first[damage] - second[damage]
            if damage_difference == 0:
                continue
            outcomes.append((teacher_forced > 0) == (damage_difference > 0))
        result[seed] = outcomes
    return result


def residual_ranks(values: np.ndarray, controls: list[np.ndarray]) -> np.ndarray:
    """The ranks of `values` minus their least-squares fit on the ranks of `controls`."""
    design = np.column_stack(
        [np.ones(len(values)), *(average_ranks(control) for control in controls)]
    )
    ranks = average_ranks(values)
    coefficients, *_ = np.linalg.lstsq(design, ranks, rcond=None)
    return ranks - design @ coefficients


def partial_spearman_two(
    values: np.ndarray, damage: np.ndarray, controls: list[np.ndarray]
) -> float:
    """Partial Spearman correlation of `values` and `damage` given every control."""
    return pearson(residual_ranks(values, controls), residual_ranks(damage, controls))


def t_interval(values: list[float]) -> list[float] | None:
    """The 95 % t-interval of the mean over seeds (None for fewer than 2)."""
    if len(values) < 2:
        return None
    array = np.asarray(values)
    half = (
        student_t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array))
    )
    return [float(array.mean() - half), float(array.mean() + half)]


def selection_analysis(
    rows: list[dict[str, Any]], resamples: int, seed: int
) -> dict[str, Any]:
    """The plan's step-2 figures over the trials whose damage is known."""
    complete = [row for row in rows if all(row[m] is not None for m in DAMAGE_MEASURES)]
    seeds = sorted({row["seed"] for row in complete})
    generator = np.random.default_rng(seed)
    draws = generator.integers(0, len(seeds), size=(resamples, len(seeds)))
    result: dict[str, Any] = {
        "distinct_trials": len(rows),
        "with_damage": len(complete),
        "seeds": seeds,
    }
    for damage in DAMAGE_MEASURES:
        pairs = discordant_pairs(complete, damage)
        correct = np.array([sum(pairs[number]) for number in seeds], dtype=np.float64)
        total = np.array([len(pairs[number]) for number in seeds], dtype=np.float64)
        shares = [
            float(right / count)
            for right, count in zip(correct, total, strict=True)
            if count > 0
        ]
        resampled = [
            correct[drawn].sum() / total[drawn].sum()
            for drawn in draws
            if total[drawn].sum() > 0
        ]
        partial = {}
        columns = {
            name: np.array([row[name] for row in complete], dtype=np.float64)
            for name in ("teacher_forced_kl", "first_token_kl", "refusals", damage)
        }
        seed_of = np.array([row["seed"] for row in complete])

        def estimate(indices: np.ndarray) -> float:
            return partial_spearman_two(
                columns["teacher_forced_kl"][indices],
                columns[damage][indices],
                [columns["first_token_kl"][indices], columns["refusals"][indices]],
            )

        all_indices = np.arange(len(complete))
        partial_values = []
        for drawn in draws:
            indices = np.concatenate(
                [all_indices[seed_of == seeds[position]] for position in drawn]
            )
            partial_values.append(estimate(indices))
        partial = {
            "estimate": estimate(all_indices),
            "bootstrap_95": [
                float(bound) for bound in np.nanpercentile(partial_values, [2.5, 97.5])
            ],
        }
        result[damage] = {
            "discordant_pairs": int(total.sum()),
            "teacher_forced_correct": int(correct.sum()),
            "share_teacher_forced_correct": (
                float(correct.sum() / total.sum()) if total.sum() > 0 else None
            ),
            "bootstrap_95_over_seeds": (
                [float(bound) for bound in np.percentile(resampled, [2.5, 97.5])]
                if resampled
                else None
            ),
            "per_seed": {
                str(number): {"pairs": int(count), "teacher_forced_correct": int(right)}
                for number, right, count in zip(seeds, correct, total, strict=True)
            },
            "t_interval_95_of_per_seed_shares": t_interval(shares),
            "seeds_without_pairs": [
                number for number, count in zip(seeds, total, strict=True) if count == 0
            ],
            "partial_spearman_given_first_token_and_refusals": partial,
        }
    return result


def summary(result: dict[str, Any]) -> str:
    """The analysis in Markdown."""
    lines = [
        f"Selection test over {result['with_damage']} of {result['distinct_trials']} "
        "distinct trials with damage measured"
        + (
            " (**PARTIAL**)"
            if result["with_damage"] < result["distinct_trials"]
            else ""
        )
        + ".",
        "",
        "| damage | discordant pairs | teacher-forced correct | share [bootstrap over seeds] "
        "| t-interval of per-seed shares | partial ρ(TF, damage given FT, refusals) "
        "[bootstrap over seeds] |",
        "|---|---|---|---|---|---|",
    ]
    for damage in DAMAGE_MEASURES:
        entry = result[damage]
        share = entry["share_teacher_forced_correct"]
        bootstrap = entry["bootstrap_95_over_seeds"]
        interval = entry["t_interval_95_of_per_seed_shares"]
        partial = entry["partial_spearman_given_first_token_and_refusals"]
        lines.append(
            f"| {damage.replace('_', ' ')} | {entry['discordant_pairs']} | "
            f"{entry['teacher_forced_correct']} | "
            + ("—" if share is None else f"{share:.2f}")
            + (
                ""
                if bootstrap is None
                else f" [{bootstrap[0]:.2f}, {bootstrap[1]:.2f}]"
            )
            + " | "
            + ("—" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]")
            + f" | {partial['estimate']:+.2f} [{partial['bootstrap_95'][0]:+.2f}, "
            f"{partial['bootstrap_95'][1]:+.2f}] |"
        )
    return "\n".join(lines) + "\n"


def main(arguments: list[str] | None = None) -> int:
    """Measures what is missing (unless --report-only) and writes the analysis."""
    options = parse_arguments(list(sys.argv[1:] if arguments is None else arguments))
    in_loop_arguments = [
        "--model",
        options.model,
        "--output-dir",
        str(options.in_loop_dir),
    ]
    if options.smoke:
        in_loop_arguments.append("--smoke")
    in_loop_options = in_loop.parse_arguments(in_loop_arguments)
    if not options.report_only:
        torch.set_num_threads(in_loop_options.threads)
        transformers.logging.set_verbosity_error()
        with torch.no_grad():
            measure_missing(options, in_loop_options)
    rows = trial_table(options.in_loop_dir)
    result = selection_analysis(rows, options.bootstrap, 0)
    output = options.in_loop_dir / "selection"
    output.mkdir(parents=True, exist_ok=True)
    (output / "analysis.json").write_text(json.dumps(result, indent=2) + "\n")
    (output / "summary.md").write_text(summary(result))
    if options.commit:
        commit_paths(
            [output],
            "Selection test: analysis of the distinct in-loop trials",
            in_loop.log,
        )
    in_loop.log(f"Wrote {output / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
