# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The settings of the teacher-forced KL scorer.

heretic validates a `[scorer.TeacherForcedKL]` table of `config.toml` against
this model. `config.default.toml` lists every field, in this order, with its
description.
"""

from collections.abc import Callable
from typing import Any

from heretic.config import DatasetSpecification
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import UsageError, describe_validation_error
from .metric.engine import KLTokens, PositionWeightDecay
from .metric.memory import ReferenceStorage
from .names import SETTINGS_TABLE


class PromptSpecification(DatasetSpecification):  # type: ignore[misc]
    """
    heretic's `DatasetSpecification`, with every key checked: heretic's own model
    ignores keys it does not know, so a misspelled `splt` would select every
    prompt without a word. heretic takes it wherever it takes its own (it is a
    subclass), for example in `Context.load_prompts`.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("dataset")
    @classmethod
    def dataset_is_named(cls, dataset: str) -> str:
        """An empty dataset would be taken as a Hugging Face ID and fail after loading."""
        if not dataset.strip():
            raise ValueError(
                "empty; give a .txt file with one prompt per line, a dataset saved "
                "on disk, or a dataset ID"
            )
        return dataset


def default_prompts() -> PromptSpecification:
    """Returns the same prompts as heretic's built-in KL divergence scorer."""
    return PromptSpecification(
        dataset="mlabonne/harmless_alpaca",
        split="test[:100]",
        column="text",
    )


class TeacherForcedKLSettings(BaseModel):
    """Settings of the `TeacherForcedKL` scorer."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    prompts: PromptSpecification = Field(
        default_factory=default_prompts,
        description=(
            "Prompt dataset used to measure KL divergence from the original model "
            "(the same default as heretic's built-in KL divergence scorer). "
            "With heretic-llm 1.4.0, the launcher uses good_evaluation_prompts "
            "unless this is set."
        ),
    )

    kl_tokens: KLTokens = Field(
        default=3,
        description=(
            "Number of continuation tokens compared per prompt. The original model "
            "generates them greedily once; each trial scores all of them in one "
            "teacher-forced forward pass. 1 reproduces heretic's first-token KL divergence."
        ),
    )

    position_weight_decay: PositionWeightDecay = Field(
        default=1.0,
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


#: The scorer settings that define a study's numbers: a study keeps them from
#: its first trial to its last, on both hosts, and refuses to continue with
#: others (the batch size and the reference storage change only how fast).
MEASURE_FIELDS = ("prompts", "kl_tokens", "position_weight_decay")

#: heretic's settings file, which holds the scorer's table.
CONFIG_FILE = "config.toml"


#: Where every setting is described, for the end of a settings error.
SETTINGS_HELP = " (heretic-kl --print-config describes every setting)."


def table_location(table: str) -> Callable[[str], str]:
    """Names a setting's dotted location as a key of `[table]` in `config.toml`."""
    return lambda location: f"{CONFIG_FILE} [{table}] {location}"


def validate_settings(
    raw: dict[str, Any] | None,
    table: str = SETTINGS_TABLE,
    location_name: Callable[[str], str] | None = None,
    suffix: str = SETTINGS_HELP,
) -> TeacherForcedKLSettings:
    """
    Validates raw settings (a `config.toml` table, perhaps merged with flags): the
    one check of every setting. Raises `UsageError` with one line that names each
    bad setting as `location_name` spells it (by default a key of `[table]`).
    """
    try:
        return TeacherForcedKLSettings.model_validate(raw or {})
    except ValidationError as error:
        raise UsageError(
            describe_validation_error(
                error,
                prefix="",
                suffix=suffix,
                location_name=location_name or table_location(table),
            )
        ) from None


def validate_setting(name: str, value: Any, source: str) -> Any:
    """
    Validates one setting given on its own (`compare --kl-tokens`, say) by the
    settings model, with one line that names `source`.
    """
    settings = validate_settings(
        {name: value}, location_name=lambda _: source, suffix="."
    )
    return getattr(settings, name)
