# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""How a teacher-forced KL measurement is shown on the console and in model cards."""

import math

from ..metric.measurement import KLMeasurement

#: Up to this many positions, every per-position mean is shown.
MAXIMUM_POSITIONS_SHOWN = 8


def format_value(value: float) -> str:
    """Formats one KL value compactly (three significant digits, or "-" when undefined)."""
    if math.isnan(value):
        return "-"
    return f"{value:.3g}"


def format_position_means(position_means: list[float]) -> str:
    """
    Formats per-position means as "a · b · c", eliding the middle of long lists.
    """
    values = [format_value(value) for value in position_means]
    if len(values) > MAXIMUM_POSITIONS_SHOWN:
        values = values[: MAXIMUM_POSITIONS_SHOWN - 2] + ["…", values[-1]]
    return " · ".join(values)


def format_per_position(position_means: list[float]) -> str:
    """
    Formats per-position means as "first token a, then b · c": the first is
    heretic's own first-token KL divergence, on the same prompts.
    """
    first = f"first token {format_value(position_means[0])}"
    if len(position_means) == 1:
        return first
    rest = format_position_means(position_means[1:])
    return f"{first}, then {rest}"


def rich_display(measurement: KLMeasurement) -> str:
    """The Rich markup heretic prints for a trial."""
    return (
        f"{measurement.mean:.4f} "
        f"[dim]({format_per_position(measurement.position_means)})[/]"
    )


def markdown_display(measurement: KLMeasurement) -> str:
    """The Markdown heretic writes into the model card."""
    return (
        f"{measurement.mean:.4f} *({format_per_position(measurement.position_means)})*"
    )
