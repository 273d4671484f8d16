# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The JSON document that `heretic-kl compare --json` writes: inputs, settings and every number."""

import argparse
import dataclasses
import math
from typing import Any

from ...report import ComparisonReport
from ..model_sources import ModelSource


def json_safe(value: Any) -> Any:
    """Replaces NaN and infinities (which JSON lacks) by null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def report_document(
    report: ComparisonReport,
    options: argparse.Namespace,
    specification: Any,
    prompts: list[Any],
    references: list[str],
    candidate: ModelSource,
    dtypes: dict[str, str],
) -> dict[str, Any]:
    """
    Everything the `--json` file holds: the inputs, the settings and every number.
    `most_divergent_prompts` repeats, for the prompts that diverge most, their
    entries of `prompts` with their index.
    """
    per_prompt = [
        {
            "system": prompt.system,
            "user": prompt.user,
            "reference": reference,
            "counted_tokens": report.prompt_counted_tokens[index],
            "mean_kl": report.prompt_mean_kl[index],
            "kl_by_position": report.prompt_kl_by_position[index],
            "first_top1_difference": report.prompt_first_top1_difference[index],
            "non_finite_positions": report.prompt_non_finite_positions[index],
        }
        for index, (prompt, reference) in enumerate(zip(prompts, references))
    ]
    return json_safe(
        {
            "original": options.original,
            "candidate": options.candidate,
            "candidate_kind": "adapter" if candidate.is_adapter else "model",
            "settings": {
                "prompts": specification.model_dump(),
                "system_prompt": options.system_prompt,
                "kl_tokens": options.kl_tokens,
                "batch_size": options.batch_size,
                "device": options.device,
                "dtype": options.dtype,
                "loaded_dtypes": dtypes,
                "standard_errors": "standard error of the mean of per-prompt means",
            },
            "report": dataclasses.asdict(report),
            "prompts": per_prompt,
            "most_divergent_prompts": [
                {"index": index, **per_prompt[index]}
                for index in report.most_divergent_prompts
            ],
        }
    )


def decode_references(tokenizer: Any, targets: Any, counted: Any) -> list[str]:
    """The counted reference tokens of every prompt, as text."""
    return [
        tokenizer.decode(row[mask].tolist(), skip_special_tokens=False)
        for row, mask in zip(targets, counted)
    ]
