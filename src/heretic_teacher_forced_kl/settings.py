# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The settings of the teacher-forced KL scorer.

heretic validates a `[scorer.TeacherForcedKL]` table of `config.toml` against
this model. `config.default.toml` lists every field, in this order, with its
description.
"""

from typing import Any

from heretic.config import DatasetSpecification
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import describe_validation_error
from .metric.memory import ReferenceStorage
from .names import SETTINGS_TABLE


def default_prompts() -> DatasetSpecification:
    """Returns the same prompts as heretic's built-in KL divergence scorer."""
    return DatasetSpecification(
        dataset="mlabonne/harmless_alpaca",
        split="test[:100]",
        column="text",
    )


class TeacherForcedKLSettings(BaseModel):
    """Settings of the `TeacherForcedKL` scorer."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    prompts: DatasetSpecification = Field(
        default_factory=default_prompts,
        description=(
            "Prompt dataset used to measure KL divergence from the original model "
            "(the same default as heretic's built-in KL divergence scorer). "
            "With heretic-llm 1.4.0, the launcher uses good_evaluation_prompts "
            "unless this is set."
        ),
    )

    kl_tokens: int = Field(
        default=3,
        ge=1,
        strict=True,
        description=(
            "Number of continuation tokens compared per prompt. The original model "
            "generates them greedily once; each trial scores all of them in one "
            "teacher-forced forward pass. 1 reproduces heretic's first-token KL divergence."
        ),
    )

    position_weight_decay: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description=(
            "Geometric weight of successive positions: position k (from 0) is weighted by "
            "position_weight_decay ** k. 1 weights every position equally; smaller values "
            "emphasize the first tokens."
        ),
    )

    batch_size: int = Field(
        default=0,
        ge=0,
        strict=True,
        description=(
            "Number of prompts per forward pass (0 = heretic's batch size). "
            "A batch that runs out of memory is split in two and retried."
        ),
    )

    reference_storage: ReferenceStorage = Field(
        default=ReferenceStorage.AUTO,
        description=(
            "Where the reference log-probabilities (prompts x kl_tokens x vocabulary x 4 bytes) "
            'are kept: "device" (on the device that holds the logits), "cpu" (in pinned CPU '
            'memory, streamed to the device per batch) or "auto" (on the device when they '
            "take at most a quarter of its free memory, otherwise in CPU memory)."
        ),
    )


def validate_settings(
    raw: dict[str, Any] | None, table: str = SETTINGS_TABLE
) -> TeacherForcedKLSettings:
    """
    Validates a raw settings table, raising `ValueError` with a one-line message.
    """
    try:
        return TeacherForcedKLSettings.model_validate(raw or {})
    except ValidationError as error:
        raise ValueError(
            describe_validation_error(
                error,
                prefix=f"Invalid [{table}] setting: ",
                suffix=(
                    ". See config.default.toml of heretic-teacher-forced-kl "
                    "(`heretic-kl --print-config`) for valid values."
                ),
            )
        ) from None
