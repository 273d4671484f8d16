# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The console tables of `heretic-kl compare`, rendered from a `ComparisonReport`."""

import math
from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ...report import ComparisonReport

#: The most characters of a prompt or reference continuation that the list of
#: the prompts that diverge most shows.
MAXIMUM_TEXT_LENGTH = 100


def number(value: float, digits: int = 4) -> str:
    """A value with `digits` significant digits, or "-" when undefined."""
    if math.isnan(value):
        return "-"
    return f"{value:.{digits}g}"


def with_error(value: float, error: float, digits: int = 4) -> str:
    """ "value ± standard error", without the error where either is undefined."""
    if math.isnan(error) or math.isnan(value):
        return number(value, digits)
    return f"{number(value, digits)} ± {number(error, 2)}"


def percent(value: float, error: float | None = None) -> str:
    """A share as a percentage, with its standard error when given."""
    if math.isnan(value):
        return "-"
    if error is None or math.isnan(error):
        return f"{100 * value:.2f} %"
    return f"{100 * value:.2f} ± {100 * error:.2f} %"


def summary_table(report: ComparisonReport) -> Table:
    """The headline numbers, in the spirit of llama.cpp's KL-divergence summary."""
    table = Table(title="Teacher-forced KL divergence", title_justify="left")
    table.add_column("Statistic")
    table.add_column("Value", justify="right")
    table.add_row("Prompts", str(report.prompt_count))
    table.add_row(
        "Counted tokens",
        f"{report.counted_tokens} (up to {report.kl_tokens} per prompt)",
    )
    table.add_row(
        "[bold]Mean KL(original ‖ candidate)[/]",
        f"[bold]{with_error(report.mean_kl, report.mean_kl_standard_error)}[/]",
    )
    table.add_row("Median KL", number(report.median_kl))
    table.add_row("90th percentile KL", number(report.percentile_90_kl))
    table.add_row("99th percentile KL", number(report.percentile_99_kl))
    table.add_row("Maximum KL", number(report.maximum_kl))
    table.add_row("First-token KL (heretic's measure)", number(report.first_token_kl))
    table.add_row(
        "Top-1 agreement",
        percent(report.top1_agreement, report.top1_agreement_standard_error),
    )
    table.add_row(
        "Mean Δp of the reference token",
        percent(
            report.mean_probability_change,
            report.mean_probability_change_standard_error,
        ),
    )
    table.add_row(
        "Mean ΔNLL = ln(PPL(candidate) / PPL(original))",
        with_error(
            report.negative_log_likelihood_change,
            report.negative_log_likelihood_change_standard_error,
        ),
    )
    table.add_row("PPL(candidate) / PPL(original)", number(report.perplexity_ratio))
    table.add_row(
        "PPL of the reference: original, candidate",
        f"{number(report.original_perplexity)}, {number(report.candidate_perplexity)}",
    )
    if report.infinite_kl_positions:
        table.add_row(
            "[red]Positions with infinite KL[/]",
            f"[red]{report.infinite_kl_positions} of {report.counted_tokens}[/]",
        )
    if report.non_finite_positions:
        table.add_row(
            "[red]  of them: NaN or infinite candidate logits[/]",
            f"[red]{report.non_finite_positions}[/]",
        )
    return table


def position_table(report: ComparisonReport) -> Table:
    """The KL divergence at every position of the reference continuation."""
    table = Table(title="KL divergence by position", title_justify="left")
    table.add_column("Position", justify="right")
    table.add_column("Counted", justify="right")
    table.add_column("Mean KL", justify="right")
    table.add_column("± SE", justify="right")
    table.add_column("Median", justify="right")
    table.add_column("Quartiles", justify="right")
    table.add_column("Top-1 agreement", justify="right")
    for position in report.positions:
        table.add_row(
            str(position.position),
            str(position.counted),
            number(position.mean_kl),
            number(position.mean_kl_standard_error, 2),
            number(position.median_kl, 3),
            f"{number(position.first_quartile_kl, 3)} – {number(position.third_quartile_kl, 3)}",
            percent(position.top1_agreement),
        )
    return table


def confidence_table(report: ComparisonReport) -> Table:
    """The KL divergence by the original model's probability of its own token."""
    table = Table(
        title="KL divergence by the original's confidence in its own token",
        title_justify="left",
    )
    table.add_column("p_original(reference token)")
    table.add_column("Tokens", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("Mean KL", justify="right")
    table.add_column("Top-1 agreement", justify="right")
    for bucket in report.confidence_buckets:
        table.add_row(
            bucket.label,
            str(bucket.count),
            percent(bucket.share),
            number(bucket.mean_kl),
            percent(bucket.top1_agreement),
        )
    return table


def shortened(text: str, length: int = MAXIMUM_TEXT_LENGTH) -> str:
    """`text` on one line (line breaks shown as "⏎"), cut to `length` characters."""
    text = " ".join(text.replace("\n", " ⏎ ").split())
    return text if len(text) <= length else text[: length - 1] + "…"


def divergent_prompts(
    report: ComparisonReport,
    prompt_texts: Sequence[str],
    reference_texts: Sequence[str],
) -> Group:
    """
    The prompts that diverge most, one block each: the prompt, ORIGINAL's
    reference continuation, the mean KL, the first position where CANDIDATE's
    most likely token is not the reference token, and the KL at each counted
    position. Texts are shown as they are, never read as markup.
    """
    lines = [Text("Prompts that diverge most", style="table.title")]
    for rank, index in enumerate(report.most_divergent_prompts, start=1):
        first_difference = report.prompt_first_top1_difference[index]
        agreement = (
            "CANDIDATE's top-1 token always agrees"
            if first_difference is None
            else f"CANDIDATE's top-1 token first differs at position {first_difference}"
        )
        values = " · ".join(
            number(value, 3) for value in report.prompt_kl_by_position[index]
        )
        lines += [
            Text(
                f"{rank}. Prompt {index + 1} of {report.prompt_count}: mean KL "
                f"{number(report.prompt_mean_kl[index])}; {agreement}",
                style="bold",
            ),
            Text(f"   Prompt:    {shortened(prompt_texts[index])}"),
            Text(f"   Reference: {shortened(reference_texts[index])}"),
            Text(f"   KL by position: {values}"),
        ]
    return Group(*lines)


def render_report(
    report: ComparisonReport,
    prompt_texts: Sequence[str],
    reference_texts: Sequence[str],
) -> Group:
    """
    Every table of the report, with a note on how the standard errors are taken.
    `prompt_texts` and `reference_texts` are each prompt's user text and
    ORIGINAL's continuation, for the list of the prompts that diverge most.
    """
    note = Text(
        "± values are standard errors of the mean over prompts (from the per-prompt means; "
        "positions within one continuation are correlated). Δp and ΔNLL: candidate minus "
        "original, for the original's greedy reference tokens.",
        style="dim",
    )
    return Group(
        summary_table(report),
        note,
        Text(),
        position_table(report),
        Text(),
        confidence_table(report),
        *(
            [Text(), divergent_prompts(report, prompt_texts, reference_texts)]
            if report.most_divergent_prompts
            else []
        ),
    )
