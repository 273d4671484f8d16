# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Writing the evidence study's results: JSON, CSV and a generated Markdown summary.

- `results.json`: the command, configuration, environment, runtime, every
  model's parameters and numbers, and the analysis;
- `models.csv`: one row per model (the original first);
- `correlations.csv`: one row per bootstrapped statistic;
- `summary.md`: the tables of `docs/evidence.md`, generated.
"""

import csv
import json
import math
from pathlib import Path
from typing import Any

from studies.evidence_analysis import BASELINE_VARIANT, DAMAGE_LABELS, DAMAGE_MEASURES
from studies.kl_measures import KL_VARIANT_LABELS, KL_VARIANTS


def interval_text(statistic: dict[str, Any] | None) -> str:
    """A statistic as "0.42 [0.10, 0.68]", or "n/a" when undefined."""
    if not statistic or statistic.get("estimate") is None:
        return "n/a"
    if statistic.get("low") is None:
        return f"{statistic['estimate']:+.2f}"
    return f"{statistic['estimate']:+.2f} [{statistic['low']:+.2f}, {statistic['high']:+.2f}]"


def number_text(value: float | None) -> str:
    """A measured value with four significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def model_row(record: dict[str, Any]) -> dict[str, Any]:
    """One model's flat CSV row."""
    row: dict[str, Any] = {
        "name": record["name"],
        "seconds": round(record["seconds"], 2),
    }
    row.update(record["parameters"])
    row.update({f"kl_{name}": value for name, value in record["kl"].items()})
    row["accuracy"] = record["accuracy"]
    row["correct_answers"] = record["correct_answers"]
    row["heldout_nll"] = record["heldout_nll"]
    row["nll_increase"] = record["nll_increase"]
    return row


def write_models_csv(records: list[dict[str, Any]], path: Path) -> None:
    """Writes one row per model, with the union of every row's columns."""
    rows = [model_row(record) for record in records]
    fields: list[str] = []
    for row in rows:
        fields.extend(field for field in row if field not in fields)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_correlations_csv(analysis: dict[str, Any], path: Path) -> None:
    """Writes one row per statistic: the full sample's and the low-KL half's."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                "sample",
                "statistic",
                "kl_variant",
                "damage",
                "estimate",
                "low",
                "high",
                "defined_resamples",
            ]
        )
        samples = {
            "all": analysis["statistics"],
            "low_first_token_kl_half": analysis["low_first_token_kl_half"][
                "statistics"
            ],
        }
        for sample, statistics in samples.items():
            for name, value in statistics.items():
                kind, variant, damage = name.split("/")
                writer.writerow(
                    [
                        sample,
                        kind,
                        variant,
                        damage,
                        value["estimate"],
                        value["low"],
                        value["high"],
                        value["defined_resamples"],
                    ]
                )


def correlation_table(statistics: dict[str, Any]) -> list[str]:
    """The Markdown table of Spearman correlations, partial correlations and differences."""
    header = (
        "| KL variant | ρ with accuracy drop | ρ with NLL increase "
        "| partial ρ given first-token KL: accuracy drop | … NLL increase "
        "| ρ − ρ(first-token): accuracy drop | … NLL increase |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    for variant in KL_VARIANTS:
        cells = [KL_VARIANT_LABELS[variant]]
        cells += [
            interval_text(statistics.get(f"spearman/{variant}/{damage}"))
            for damage in DAMAGE_MEASURES
        ]
        for kind in ("partial_given_first_token", "difference_from_first_token"):
            cells += [
                "—"
                if variant == BASELINE_VARIANT
                else interval_text(statistics.get(f"{kind}/{variant}/{damage}"))
                for damage in DAMAGE_MEASURES
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def converse_table(statistics: dict[str, Any]) -> list[str]:
    """The partial correlation of first-token KL with damage, given each other variant."""
    lines = [
        "| given | partial ρ(first-token KL, accuracy drop) "
        "| partial ρ(first-token KL, NLL increase) |",
        "|---|---|---|",
    ]
    for variant in KL_VARIANTS:
        if variant == BASELINE_VARIANT:
            continue
        cells = [KL_VARIANT_LABELS[variant]] + [
            interval_text(
                statistics.get(f"first_token_given_variant/{variant}/{damage}")
            )
            for damage in DAMAGE_MEASURES
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def low_kl_table(low: dict[str, Any]) -> list[str]:
    """The Spearman correlations within the low first-token KL half."""
    lines = [
        f"Models with first-token KL ≤ {low['median_first_token_kl']:.4g} "
        f"(the median): {low['models']}.",
        "",
        "| KL variant | ρ with accuracy drop | ρ with NLL increase |",
        "|---|---|---|",
    ]
    for variant in KL_VARIANTS:
        cells = [KL_VARIANT_LABELS[variant]] + [
            interval_text(low["statistics"].get(f"spearman/{variant}/{damage}"))
            for damage in DAMAGE_MEASURES
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def models_table(records: list[dict[str, Any]]) -> list[str]:
    """Every model's KL values and damage, sorted by first-token KL."""
    columns = [
        "model",
        "scope",
        *[KL_VARIANT_LABELS[variant] for variant in KL_VARIANTS],
        "accuracy",
        "NLL increase",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in sorted(records, key=lambda model: model["kl"][BASELINE_VARIANT]):
        cells = [
            record["name"],
            str(record["parameters"].get("direction_scope", "—")),
            *[number_text(record["kl"][variant]) for variant in KL_VARIANTS],
            f"{record['accuracy']:.3f}",
            number_text(record["nll_increase"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def runtime_sentence(results: dict[str, Any]) -> str:
    """
    The runtime; for a resumed study also how many models came from the state,
    and the models' own measurement time summed over all of them (each counted
    once, in the session that measured it).
    """
    threads = results["environment"]["torch_threads"]
    taken = results.get("models_taken_from_state", 0)
    if not taken:
        return (
            f"Runtime: {results['runtime_seconds'] / 60:.1f} minutes "
            f"({threads} torch thread(s)). "
        )
    measured = len(results["models"]) - taken
    return (
        f"Runtime of the last session: {results['runtime_seconds'] / 60:.1f} minutes "
        f"({threads} torch thread(s)), which measured {measured} models and took "
        f"{taken} from the resumable state; the measurement time of all "
        f"{len(results['models'])} models, each counted once, is "
        f"{results['measurement_seconds_all_models'] / 60:.1f} minutes (set-up not "
        "included). "
    )


def summary_markdown(results: dict[str, Any]) -> str:
    """The generated Markdown summary of a study."""
    analysis = results["analysis"]
    configuration = results["configuration"]
    lines = [
        "# Evidence study: generated tables",
        "",
        f"Command: `{results['command']}`",
        "",
        runtime_sentence(results),
        f"Models: the original and {analysis['models']} abliterations; "
        f"{configuration['kl_prompts']} KL prompts, {results['questions']['kept']} questions "
        f"that the original answers correctly (of {results['questions']['examined']} examined), "
        f"{configuration['heldout_prompts']} held-out prompts x "
        f"{configuration['heldout_tokens']} tokens.",
        "",
        f"Spearman correlations over the {analysis['models']} abliterated models, with "
        f"{analysis['resamples']}-resample bootstrap 95% intervals. Damage is oriented so that "
        "larger is worse, so a positive ρ means the KL variant ranks damage correctly.",
        "",
        *correlation_table(analysis["statistics"]),
        "",
        "Conversely, what first-token KL adds beyond each other variant:",
        "",
        *converse_table(analysis["statistics"]),
        "",
        "## The low first-token KL half",
        "",
        *low_kl_table(analysis["low_first_token_kl_half"]),
        "",
        "## Spearman correlation of each KL variant with first-token KL",
        "",
        "| KL variant | ρ with first-token KL |",
        "|---|---|",
        *[
            f"| {KL_VARIANT_LABELS[variant]} "
            f"| {analysis['kl_variant_spearman'][BASELINE_VARIANT][variant]:+.3f} |"
            for variant in KL_VARIANTS
        ],
        "",
        "## Discordant models (first-token KL in the lowest third, damage in the highest third)",
        "",
    ]
    for damage in DAMAGE_MEASURES:
        found = analysis["discordant_models"][damage]
        names = ", ".join(
            f"{model['name']} (damage {model['damage']:.4g}, first-token rank "
            f"{model['kl_ranks'][BASELINE_VARIANT]}, TF-16 rank "
            f"{model['kl_ranks']['teacher_forced_16']})"
            for model in found
        )
        lines.append(f"- {DAMAGE_LABELS[damage]}: {names if found else 'none'}")
    lines += ["", "## Every model", "", *models_table(results["models"]), ""]
    return "\n".join(lines)


def json_ready(value: Any) -> Any:
    """Replaces NaN and infinity by None, recursively, so that the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def write_results(results: dict[str, Any], output_directory: Path) -> list[Path]:
    """Writes the JSON, both CSV files and the Markdown summary; returns their paths."""
    output_directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output_directory / "results.json",
        "models": output_directory / "models.csv",
        "correlations": output_directory / "correlations.csv",
        "summary": output_directory / "summary.md",
    }
    paths["json"].write_text(
        json.dumps(json_ready(results), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    write_models_csv(results["models"], paths["models"])
    write_correlations_csv(results["analysis"], paths["correlations"])
    paths["summary"].write_text(summary_markdown(results), encoding="utf-8")
    return list(paths.values())
