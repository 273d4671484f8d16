# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The one place that reaches into heretic beyond its public plugin API.

heretic's plugin `Context` deliberately exposes only first-token logits, which
cannot drive a teacher-forced pass; like upstream's own benchmark scorer, this
package therefore reads the model that the context holds. Every such access
goes through `heretic_model`, which fails with a clear message on a host that
lacks it.
"""

from pathlib import Path
from typing import Any

from heretic.config import DatasetSpecification
from heretic.utils import Prompt, load_prompts

from ..reference import PromptModel
from ..settings import SETTINGS_TABLE

#: heretic's batch size setting is 0 ("auto") until heretic has determined it.
FALLBACK_BATCH_SIZE = 8


def heretic_model(ctx: Any) -> PromptModel:
    """Returns the `heretic.model.Model` that a plugin context holds."""
    model = getattr(ctx, "_model", None)
    if model is None or not hasattr(model, "model") or not hasattr(model, "generate"):
        raise RuntimeError(
            "TeacherForcedKL needs the model that heretic's plugin Context holds "
            "(Context._model), and this heretic version's Context has none; use heretic "
            "master with the plugin API, or run heretic through the heretic-kl launcher."
        )
    return model


def host_batch_size(heretic_settings: Any) -> int:
    """Returns heretic's batch size, or a safe default while it is still "auto"."""
    batch_size = int(getattr(heretic_settings, "batch_size", 0) or 0)
    return batch_size if batch_size > 0 else FALLBACK_BATCH_SIZE


def load_scorer_prompts(
    heretic_settings: Any,
    specification: DatasetSpecification,
    table: str = SETTINGS_TABLE,
) -> list[Prompt]:
    """
    Loads the scorer's prompts with heretic's own loader (system prompt, prefix and
    suffix included), turning every failure into a one-line error that names the setting.
    """
    dataset = specification.dataset
    if (
        dataset.endswith((".txt", ".jsonl", ".json", ".csv"))
        and not Path(dataset).is_file()
    ):
        raise ValueError(
            f"[{table}] prompts: no file at {dataset!r}; set prompts.dataset to an "
            "existing .txt file (one prompt per line) or a dataset ID or folder."
        )
    try:
        prompts = load_prompts(heretic_settings, specification)
    except Exception as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(
            f"[{table}] prompts: cannot load dataset {specification.dataset!r} "
            f"({detail}); set prompts.dataset to a readable dataset, a dataset saved "
            "on disk, or a .txt file with one prompt per line."
        ) from None
    if not prompts:
        raise ValueError(
            f"[{table}] prompts: dataset {specification.dataset!r} "
            f"(split {specification.split!r}) holds no prompts; point prompts.dataset "
            "or prompts.split at a non-empty prompt set."
        )
    return prompts
