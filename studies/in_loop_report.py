# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The in-loop study's report, written from its state files alone.

`write_report(output folder)` reads `<output folder>/state/`, analyzes what
has finished (`in_loop_analysis.py`) and writes `trials.csv` (one row per
trial), `analysis.json`, `summary.md` (every table; marked PARTIAL while
studies or measurements are missing) and the plots of the picked models.
It measures nothing, so it runs at any time, also while a run is under way:

    python -m studies.in_loop --report-only [--output-dir docs/in-loop]
"""

import csv
import json
import math
from pathlib import Path
from typing import Any

from studies.in_loop_analysis import (
    BASELINE_ARM,
    DAMAGE_LABELS,
    DAMAGE_MEASURES,
    analyze,
    study_fronts,
    study_progress,
    trial_rows,
)
from studies.in_loop_state import StudyState, read_json

#: The columns of `trials.csv`, in order.
CSV_COLUMNS = (
    "arm",
    "seed",
    "trial",
    "refusals",
    "first_token_kl",
    "teacher_forced_kl",
    "accuracy_drop",
    "nll_increase",
    "pareto",
    "heretic_kl",
    "bad_prompts",
    "startup",
    "damage_reason",
    "direction_scope",
)

#: Readable names of the two re-measured KL variants.
VARIANT_LABELS = {
    "first_token_kl": "first-token KL",
    "teacher_forced_kl": "teacher-forced KL",
}

#: The colour of each arm in the plots.
ARM_COLORS = {
    "first-token": "tab:blue",
    "teacher-forced-3": "tab:orange",
    "teacher-forced-3-unscaled": "tab:green",
    # The teacher-forced arm of the blind-spot studies (docs/blind-spot-plan.md).
    "teacher-forced-16-target-0.0038": "tab:orange",
}


def csv_value(value: Any) -> str:
    """A CSV cell: empty for a missing value, lower-case booleans, full float precision."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_trials_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """One row per trial of every finished study."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([csv_value(row[column]) for column in CSV_COLUMNS])


def number(value: float | None, digits: int = 3, signed: bool = False) -> str:
    """A number for a table, or a dash when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval(statistic: dict[str, Any], digits: int = 3) -> str:
    """An estimate with its bootstrap interval, or the estimate alone."""
    estimate = number(statistic.get("estimate"), digits, signed=True)
    if statistic.get("low") is None:
        return estimate
    low = number(statistic["low"], digits, signed=True)
    high = number(statistic["high"], digits, signed=True)
    return f"{estimate} [{low}, {high}]"


def progress_lines(progress: dict[str, Any]) -> list[str]:
    """The notice at the top of the summary: complete, or PARTIAL with what is missing."""
    if progress["complete"]:
        return [
            f"All {progress['planned_studies']} studies and their measurements have finished.",
            "",
        ]
    lines = [
        f"**PARTIAL**: {progress['finished_studies']} of {progress['planned_studies']} "
        f"studies finished; KL re-measured for {progress['kl_complete']}, damage "
        f"complete for {progress['damage_complete']}. The tables cover what has "
        "finished so far. Missing:",
        "",
    ]
    lines += [f"- {item}" for item in progress["unfinished"]]
    return [*lines, ""]


def arm_table(analysis: dict[str, Any]) -> list[str]:
    """Per arm: the studies, fronts and the search's typical trial."""
    lines = [
        "| arm | studies | trials | mean front size | median refusals (TPE trials) | "
        "median first-token KL (TPE trials) | median teacher-forced KL (TPE trials) | "
        "mean fewest refusals on front | its mean accuracy drop | its mean NLL increase | "
        "trials with damage measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in analysis["arms"]:
        lines.append(
            f"| {arm['arm']} | {arm['studies']} | {arm['trials']} | "
            f"{number(arm['mean_front_size'], 1)} | {number(arm['median_refusals_guided'], 1)} | "
            f"{number(arm['median_first_token_kl_guided'], 4)} | "
            f"{number(arm['median_teacher_forced_kl_guided'], 4)} | "
            f"{number(arm['mean_fewest_refusals'], 1)} | "
            f"{number(arm['mean_accuracy_drop_at_fewest_refusals'])} | "
            f"{number(arm['mean_nll_increase_at_fewest_refusals'], 4)} | "
            f"{arm['damage_measured']} |"
        )
    return lines


def overall_table(comparison: dict[str, Any]) -> list[str]:
    """The mean difference over seeds, its interval, the seeds' signs and the test."""
    other = comparison["other"]
    lines = [
        f"| damage | mean difference [95% interval] | seeds | seeds favouring {other} "
        f"| seeds favouring {comparison['baseline']} | sign-flip p |",
        "|---|---|---|---|---|---|",
    ]
    for measure in DAMAGE_MEASURES:
        statistic = comparison["overall"][measure]
        digits = 3 if measure == "accuracy_drop" else 4
        lines.append(
            f"| {DAMAGE_LABELS[measure]} | {interval(statistic, digits)} | "
            f"{statistic['count']} | {statistic['negative']} | {statistic['positive']} | "
            f"{number(statistic['p_value'], 3)} |"
        )
    return lines


def per_seed_table(comparison: dict[str, Any]) -> list[str]:
    """Per seed: the matched refusal counts and the mean differences of damage."""
    lines = [
        "| seed | matched refusal counts | mean accuracy-drop difference | "
        "mean NLL-increase difference |",
        "|---|---|---|---|",
    ]
    for entry in comparison["per_seed"]:
        counts = ", ".join(str(pair["refusals"]) for pair in entry["pairs"]) or "none"
        lines.append(
            f"| {entry['seed']} | {counts} | "
            f"{number(entry['mean_difference_accuracy_drop'], 3, True)} | "
            f"{number(entry['mean_difference_nll_increase'], 4, True)} |"
        )
    return lines


def below_original_tables(comparison: dict[str, Any]) -> list[str]:
    """The secondary comparison: only refusal counts below the original's."""
    lines = [
        f"#### {comparison['other']} against {comparison['baseline']}, only refusal "
        "counts below the original model's",
        "",
        "The same, restricted to matched refusal counts below the original model's "
        "own refusal count (the picks that refuse less than the model a user starts "
        "from; a pick that refuses as often as the original is not what anyone "
        "abliterates for). A secondary analysis, added after the first two seeds had "
        "finished; the headline above is the one planned before the run.",
        "",
        *overall_table(comparison),
        "",
        *per_seed_table(comparison),
    ]
    return [*lines, ""]


def comparison_tables(comparison: dict[str, Any]) -> list[str]:
    """The headline: damage of the other arm's picks minus the first-token arm's."""
    other = comparison["other"]
    lines = [
        f"### {other} against {comparison['baseline']}",
        "",
        "Difference of damage between the picks at matched refusal counts "
        f"({other} minus {comparison['baseline']}; negative = {other} hands users "
        "less damaged models), averaged per seed over the matched counts, then over "
        "seeds with a 95% bootstrap interval over seeds (a percentile interval over "
        "so few seeds is narrower than it should be), the seeds on each side of zero, "
        "and the exact two-sided sign-flip p-value of the mean over seeds:",
        "",
        *overall_table(comparison),
    ]
    smallest = comparison["overall"][DAMAGE_MEASURES[0]]["smallest_p_value"]
    if smallest is not None:
        lines += [
            "",
            f"With {comparison['overall'][DAMAGE_MEASURES[0]]['count']} seeds the "
            f"smallest p-value the sign-flip test can give is {smallest:.4f}.",
        ]
    lines += [
        "",
        "Per seed (matched refusal counts and the mean differences):",
        "",
        *per_seed_table(comparison),
    ]
    lines += [
        "",
        "Per matched refusal count (seeds whose fronts both offer a pick with at most "
        "that many refusals; `exact`: both picks have exactly that many):",
        "",
        f"| refusals ≤ | seeds | exact | {comparison['baseline']} accuracy drop | "
        f"{other} accuracy drop | difference | {comparison['baseline']} NLL increase | "
        f"{other} NLL increase | difference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for count in comparison["by_refusals"]:
        lines.append(
            f"| {count['refusals']} | {count['seeds']} | {count['exact']} | "
            f"{number(count['baseline_accuracy_drop'])} | {number(count['other_accuracy_drop'])} | "
            f"{interval(count['difference_accuracy_drop'])} | "
            f"{number(count['baseline_nll_increase'], 4)} | "
            f"{number(count['other_nll_increase'], 4)} | "
            f"{interval(count['difference_nll_increase'], 4)} |"
        )
    return [*lines, ""]


def goodhart_table(goodhart: dict[str, Any]) -> list[str]:
    """The Goodhart check's counts per arm."""
    if not goodhart["arms"]:
        return ["Too few trials with measured damage for the Goodhart check.", ""]
    thresholds = goodhart["thresholds"]
    lines = [
        f"Over the {goodhart['measured']} trials with measured damage (pooled over the "
        f"arms): lowest third of first-token KL ≤ {thresholds['first_token_kl_low']:.4f}, "
        f"of teacher-forced KL ≤ {thresholds['teacher_forced_kl_low']:.4f}; highest third "
        f"of accuracy drop > {thresholds['accuracy_drop_high']:.3f}, of NLL increase > "
        f"{thresholds['nll_increase_high']:.4f}.",
        "",
        "| arm | measured | low first-token KL | high accuracy drop | "
        "low first-token KL and high accuracy drop | high NLL increase | "
        "low first-token KL and high NLL increase | low teacher-forced KL and high "
        "accuracy drop | low teacher-forced KL and high NLL increase |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in goodhart["arms"]:
        lines.append(
            f"| {arm['arm']} | {arm['measured']} | {arm['low_first_token_kl']} | "
            f"{arm['high_accuracy_drop']} | "
            f"**{arm['discordant_first_token_accuracy_drop']}** | "
            f"{arm['high_nll_increase']} | "
            f"**{arm['discordant_first_token_nll_increase']}** | "
            f"{arm['discordant_teacher_forced_accuracy_drop']} | "
            f"{arm['discordant_teacher_forced_nll_increase']} |"
        )
    spearman = goodhart.get("spearman", {})
    if spearman:
        lines += [
            "",
            "Spearman ρ over these trials (a biased sample: Pareto trials and a few others): "
            + ", ".join(
                f"{VARIANT_LABELS[name.split('/')[0]]} with "
                f"{DAMAGE_LABELS[name.split('/')[1]]} {number(value, 2, True)}"
                for name, value in spearman.items()
            )
            + ".",
        ]
    return [*lines, ""]


def kl_shape_table(kl_shape: dict[str, Any], tokens: int) -> list[str]:
    """The KL shape check's ratios per arm, at the re-measured N of `tokens`."""
    if not kl_shape["arms"]:
        return ["No trial has both KL measures yet.", ""]
    lines = [
        f"Ratio of teacher-forced KL (N = {tokens}) to first-token KL of every "
        "re-measured trial: its median over the random startup trials (the same "
        "models in every arm of a seed) and over the guided (TPE) trials; per seed, "
        "the guided median "
        "minus the startup median, averaged over seeds with a 95% bootstrap interval. "
        "A search that finds models whose later positions diverge more than the first "
        "raises the ratio of its guided trials. The ratio also changes with the amount "
        "of damage, so compare the arms' differences, not each with zero.",
        "",
        "| arm | seeds | median ratio, startup trials | median ratio, guided trials "
        "| guided minus startup, mean over seeds [95% interval] |",
        "|---|---|---|---|---|",
    ]
    for arm in kl_shape["arms"]:
        lines.append(
            f"| {arm['arm']} | {len(arm['seeds'])} | "
            f"{number(arm['median_ratio_startup'])} | "
            f"{number(arm['median_ratio_guided'])} | "
            f"{interval(arm['mean_difference'])} |"
        )
    lines += [
        "",
        "Spearman ρ of first-token KL with teacher-forced KL over all "
        f"{kl_shape['trials']} re-measured trials (how alike the two measures rank "
        "the models the searches found): "
        f"{number(kl_shape['spearman_first_token_teacher_forced'], 2, True)}.",
    ]
    return [*lines, ""]


def fronts_table(rows: list[dict[str, Any]]) -> list[str]:
    """Every study's Pareto front: the models a user would pick."""
    lines = [
        "| arm | seed | trial | refusals | heretic's KL | first-token KL | "
        "teacher-forced KL | accuracy drop | NLL increase |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (arm, seed), front in sorted(
        study_fronts(rows).items(), key=lambda item: (item[0][1], item[0][0])
    ):
        for row in front:
            lines.append(
                f"| {arm} | {seed} | {row['trial']} | {row['refusals']}/{row['bad_prompts']} | "
                f"{number(row['heretic_kl'], 5)} | {number(row['first_token_kl'], 5)} | "
                f"{number(row['teacher_forced_kl'], 5)} | {number(row['accuracy_drop'])} | "
                f"{number(row['nll_increase'], 4)} |"
            )
    return [*lines, ""]


def runtime_lines(state: StudyState, run: dict[str, Any]) -> list[str]:
    """The measured runtime: heretic studies, KL re-measurements, damage, sessions."""
    study_seconds: list[float] = []
    trial_seconds: list[float] = []
    kl_seconds: list[float] = []
    damage_seconds: list[float] = []
    kl_copies = 0
    damage_copies = 0
    for arm in run["arms"]:
        for seed in range(run["seeds"]):
            study = state.read_study(arm, seed)
            if study is None:
                continue
            study_seconds.append(study["seconds"])
            trial_seconds += list(study["trial_seconds"].values())
            # A copied measurement carries its source's seconds; it is counted
            # once, where it was measured.
            kl_seconds += [
                value["seconds"]
                for value in state.read_kl(arm, seed)["trials"].values()
                if "seconds" in value and "copied_from" not in value
            ]
            kl_copies += sum(
                "copied_from" in value
                for value in state.read_kl(arm, seed)["trials"].values()
            )
            damage_seconds += [
                value["seconds"]
                for value in state.read_damage(arm, seed)["trials"].values()
                if "seconds" in value and "copied_from" not in value
            ]
            damage_copies += sum(
                "copied_from" in value
                for value in state.read_damage(arm, seed)["trials"].values()
            )

    def median(values: list[float]) -> str:
        return f"{sorted(values)[len(values) // 2]:.1f} s" if values else "—"

    sessions = run.get("sessions", [])
    session_seconds = sum(session.get("seconds", 0.0) for session in sessions)
    return [
        f"- heretic studies: {len(study_seconds)}, {sum(study_seconds) / 60:.1f} minutes "
        f"in all (median {median(study_seconds)} per study, median "
        f"{median(trial_seconds)} per trial)",
        f"- KL re-measurements: {len(kl_seconds)} measured and {kl_copies} copied "
        f"from the other arm's parameter-identical trial, "
        f"{sum(kl_seconds) / 60:.1f} minutes for the measured ones "
        f"(median {median(kl_seconds)})",
        f"- damage measurements: {len(damage_seconds)} measured and {damage_copies} "
        f"copied, {sum(damage_seconds) / 60:.1f} minutes for the measured ones "
        f"(median {median(damage_seconds)})",
        f"- sessions: {len(sessions)}, {session_seconds / 60:.1f} minutes of finished "
        "sessions (a killed session records no end)",
        "",
    ]


def summary_markdown(
    state: StudyState,
    run: dict[str, Any],
    rows: list[dict[str, Any]],
    analysis: dict[str, Any],
    progress: dict[str, Any],
) -> str:
    """Every generated table of the in-loop study."""
    configuration = run["configuration"]
    lines = [
        "# In-loop study: generated tables",
        "",
        "Generated by `studies/in_loop.py` from the state files in `state/`; "
        "see `docs/in-loop.md` for the method and the discussion.",
        "",
        *progress_lines(progress),
        f"Command: `{run['command']}`",
        "",
        "Arms: "
        + "; ".join(
            f"`{name}` ({definition['description']}, kl_divergence_target "
            f"{definition['kl_divergence_target']})"
            for name, definition in run["arm_definitions"].items()
        )
        + ".",
        "",
        f"Per study: {configuration['trials']} trials, {configuration['startup_trials']} "
        f"random startup trials, {configuration['harmful_prompts']} harmful evaluation "
        f"prompts ({configuration['response_tokens']}-token responses), "
        f"{configuration['kl_prompts']} KL prompts, {configuration['direction_prompts']} "
        f"direction prompts of each kind. Damage: up to {configuration['questions']} "
        f"questions ({configuration['question_tokens']} tokens), "
        f"{configuration['heldout']} held-out prompts x {configuration['heldout_tokens']} "
        f"tokens, for every Pareto trial and {configuration['damage_sample']} other "
        "trials per study.",
        "",
        "## Runtime",
        "",
        *runtime_lines(state, run),
        "## Arms",
        "",
        *arm_table(analysis),
        "",
        "## What a user gets: picks at matched refusal counts",
        "",
    ]
    if not analysis["comparisons"]:
        lines += ["No pair of arms has finished yet.", ""]
    for comparison in analysis["comparisons"]:
        lines += comparison_tables(comparison)
    for comparison in analysis["comparisons_below_original"]:
        lines += below_original_tables(comparison)
    lines += [
        "## Goodhart check",
        "",
        *goodhart_table(analysis["goodhart"]),
        "## KL shape: do the searches move damage past the first token?",
        "",
        # Runs from before `--teacher-forced-arm` re-measured at N = 3 and
        # recorded no N.
        *kl_shape_table(
            analysis["kl_shape"],
            configuration.get("measured_teacher_forced_tokens", 3),
        ),
        "## Checks",
        "",
    ]
    agreement = analysis["startup_agreement"]
    lines.append(
        f"- Random startup trials with the same re-measured first-token KL in every arm "
        f"of their seed: {agreement['identical_across_arms']} of "
        f"{agreement['startup_trials']}."
    )
    deviations = [
        abs(row["own_kl_remeasured"] - row["heretic_kl"])
        / max(row["heretic_kl"], 1e-12)
        for row in rows
        if row.get("own_kl_remeasured") is not None
    ]
    if deviations:
        lines.append(
            "- Re-applied trials: largest relative difference between the re-measured "
            f"KL of the arm's own kind and heretic's recorded KL: {max(deviations):.1e} "
            f"(over {len(deviations)} trials)."
        )
    lines += ["", "## Every study's Pareto front", "", *fronts_table(rows)]
    return "\n".join(lines) + "\n"


def picks_figure(rows: list[dict[str, Any]], measure: str, path: Path) -> None:
    """Every study's picks in (refusals, damage): one step line per study, by arm."""
    from studies.evidence_plots import import_pyplot

    pyplot = import_pyplot()
    figure, axis = pyplot.subplots(figsize=(7, 4.5))
    offsets: dict[str, float] = {}
    for (arm, seed), front in sorted(study_fronts(rows).items()):
        measured = [row for row in front if row[measure] is not None]
        if not measured:
            continue
        offset = offsets.setdefault(arm, (len(offsets) - 0.5) * 0.15)
        color = ARM_COLORS.get(arm, "tab:gray")
        refusals = [row["refusals"] + offset for row in measured]
        values = [row[measure] for row in measured]
        label = arm if not any(line.get_label() == arm for line in axis.lines) else None
        axis.plot(
            refusals,
            values,
            marker="o" if arm == BASELINE_ARM else "s",
            color=color,
            alpha=0.75,
            linewidth=1,
            markersize=5,
            drawstyle="steps-post",
            label=label,
        )
    axis.set_xlabel("refusals (harmful evaluation prompts), the front's own count")
    axis.set_ylabel(DAMAGE_LABELS[measure])
    axis.set_title(f"Models a user would pick: {DAMAGE_LABELS[measure]}")
    axis.grid(alpha=0.3)
    if axis.lines:
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def goodhart_figure(
    rows: list[dict[str, Any]], analysis: dict[str, Any], path: Path
) -> None:
    """First-token KL against the accuracy drop for every measured trial, by arm."""
    from studies.evidence_plots import import_pyplot

    pyplot = import_pyplot()
    figure, axes = pyplot.subplots(1, 2, figsize=(11, 4.5))
    thresholds = analysis["goodhart"]["thresholds"]
    for axis, measure in zip(axes, DAMAGE_MEASURES, strict=True):
        for arm in dict.fromkeys(row["arm"] for row in rows):
            measured = [
                row
                for row in rows
                if row["arm"] == arm
                and row[measure] is not None
                and row["first_token_kl"] is not None
            ]
            if not measured:
                continue
            axis.scatter(
                [row["first_token_kl"] for row in measured],
                [row[measure] for row in measured],
                color=ARM_COLORS.get(arm, "tab:gray"),
                marker="o" if arm == BASELINE_ARM else "s",
                alpha=0.6,
                s=22,
                label=arm,
            )
        if thresholds:
            axis.axvline(thresholds["first_token_kl_low"], color="gray", linestyle="--")
            axis.axhline(thresholds[f"{measure}_high"], color="gray", linestyle="--")
        axis.set_xscale("log")
        axis.set_xlabel("first-token KL (re-measured)")
        axis.set_ylabel(DAMAGE_LABELS[measure])
        axis.grid(alpha=0.3)
        if axis.collections:
            axis.legend()
    figure.suptitle(
        "Goodhart check: top left of the dashed lines = low first-token KL, high damage"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def write_report(output_directory: Path, resamples: int, seed: int = 0) -> list[Path]:
    """Writes every report file from the state files; returns their paths."""
    state = StudyState(output_directory / "state")
    run: dict[str, Any] | None = read_json(state.run_path())
    if run is None:
        raise SystemExit(f"No run recorded in {state.run_path()}; nothing to report.")
    rows = trial_rows(state, run["arms"], run["seeds"])
    # The KL of the arm's own kind, re-measured, for the check against heretic's.
    for row in rows:
        kind = (
            "first_token_kl"
            if run["arm_definitions"][row["arm"]]["kl_tokens"] is None
            else "teacher_forced_kl"
        )
        row["own_kl_remeasured"] = row[kind]
    progress = study_progress(state, run["arms"], run["seeds"])
    analysis = analyze(rows, run["arms"], resamples, seed)
    output_directory.mkdir(parents=True, exist_ok=True)
    paths = []
    path = output_directory / "trials.csv"
    write_trials_csv(rows, path)
    paths.append(path)
    path = output_directory / "analysis.json"
    path.write_text(
        json.dumps({"progress": progress, **analysis}, indent=1) + "\n",
        encoding="utf-8",
    )
    paths.append(path)
    path = output_directory / "summary.md"
    path.write_text(
        summary_markdown(state, run, rows, analysis, progress), encoding="utf-8"
    )
    paths.append(path)
    for measure in DAMAGE_MEASURES:
        path = output_directory / f"picks_{measure}.png"
        picks_figure(rows, measure, path)
        paths.append(path)
    path = output_directory / "goodhart.png"
    goodhart_figure(rows, analysis, path)
    paths.append(path)
    return paths
