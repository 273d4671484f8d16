# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""How a teacher-forced KL measurement is shown on the console and in model cards."""

import math

import torch

from ..metric.measurement import KLMeasurement

#: Up to this many positions, every per-position mean is shown.
MAXIMUM_POSITIONS_SHOWN = 8


#: Shown for a position that no prompt counts (every reference ended earlier).
NOT_COUNTED = "-"


def format_value(value: float) -> str:
    """Formats one KL value compactly: three significant digits, "inf" or "NaN"."""
    if math.isnan(value):
        return "NaN"
    return f"{value:.3g}"


def format_position_means(
    position_means: list[float], position_counts: list[int]
) -> str:
    """
    Formats per-position means as "a · b · c", eliding the middle of long lists.
    A position that no prompt counts (`position_counts` 0) shows as "-", which is
    never a value: an undefined value shows as "NaN", an infinite one as "inf".
    """
    values = [
        format_value(value) if count else NOT_COUNTED
        for value, count in zip(position_means, position_counts, strict=True)
    ]
    if len(values) > MAXIMUM_POSITIONS_SHOWN:
        values = values[: MAXIMUM_POSITIONS_SHOWN - 2] + ["…", values[-1]]
    return " · ".join(values)


def format_per_position(measurement: KLMeasurement) -> str:
    """
    Formats a measurement's per-position means as "first token a, then b · c":
    the first is heretic's own first-token KL divergence, on the same prompts.
    """
    means = measurement.position_means
    counts = measurement.position_counts
    first = f"first token {format_position_means(means[:1], counts[:1])}"
    if len(means) == 1:
        return first
    return f"{first}, then {format_position_means(means[1:], counts[1:])}"


def infinite_divergence_note(measurement: KLMeasurement) -> str:
    """
    Why a measurement's KL divergence is infinite, in one phrase; "" when it is finite.
    """
    counted = int(measurement.counted.sum())
    if measurement.non_finite_count:
        return (
            f"the model's logits are NaN or infinite at {measurement.non_finite_count} "
            f"of {counted} positions: the worst damage"
        )
    infinite = int((measurement.counted & torch.isinf(measurement.kl)).sum())
    if infinite:
        return (
            "the model gives probability 0 to a token that the original can "
            f"produce at {infinite} of {counted} positions"
        )
    return ""


def rich_display(measurement: KLMeasurement) -> str:
    """The Rich markup heretic prints for a trial."""
    note = infinite_divergence_note(measurement)
    return f"{measurement.mean:.4f} [dim]({format_per_position(measurement)})[/]" + (
        f" [red]{note}[/]" if note else ""
    )


def markdown_display(measurement: KLMeasurement) -> str:
    """The Markdown heretic writes into the model card."""
    note = infinite_divergence_note(measurement)
    return f"{measurement.mean:.4f} *({format_per_position(measurement)})*" + (
        f" **{note}**" if note else ""
    )
