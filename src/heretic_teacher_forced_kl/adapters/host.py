# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
What both heretic hosts share: the one guarded access to heretic's model, the
batch size, and the start-up steps of the scorer.

heretic's plugin `Context` deliberately exposes only first-token logits, which
cannot drive a teacher-forced pass; like upstream's own benchmark scorer, this
package therefore reads the model that the context holds. Every such access
goes through `heretic_model`, which fails with a clear message on a host that
lacks it.
"""

from collections.abc import Callable
from typing import Any

from ..console import print, print_item, unwrap_when_not_terminal
from ..metric.engine import TeacherForcedKLEngine
from ..metric.reference import PromptModel
from ..names import SETTINGS_TABLE
from ..prompts import load_prompt_set
from ..settings import TeacherForcedKLSettings

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


def unwrap_heretic_console() -> None:
    """Keeps heretic's own console from wrapping log lines off a terminal, like this package's."""
    import heretic.utils

    unwrap_when_not_terminal(getattr(heretic.utils.print, "__self__", None))


def host_batch_size(heretic_settings: Any) -> int:
    """Returns heretic's batch size, or a safe default while it is still "auto"."""
    batch_size = int(getattr(heretic_settings, "batch_size", 0) or 0)
    return batch_size if batch_size > 0 else FALLBACK_BATCH_SIZE


def prompt_loader(ctx: Any, heretic_settings: Any) -> Callable[[Any], list[Any]]:
    """
    Returns how to load a prompt set: the plugin context's public `load_prompts`,
    or, for a context without it (a fork of heretic-llm 1.4.0), heretic's own
    `load_prompts` with heretic's settings.
    """
    load = getattr(ctx, "load_prompts", None)
    return load if callable(load) else heretic_prompt_loader(heretic_settings)


def heretic_prompt_loader(heretic_settings: Any) -> Callable[[Any], list[Any]]:
    """Returns heretic's own `load_prompts`, bound to heretic's settings."""
    from heretic.utils import load_prompts

    return lambda specification: load_prompts(heretic_settings, specification)


def load_scorer_prompts(
    load: Callable[[Any], list[Any]], settings: TeacherForcedKLSettings
) -> list[Any]:
    """
    Loads the scorer's prompts with the host's loader (heretic's own: system
    prompt, prefix and suffix included), reporting them as heretic reports its own.
    """
    print()
    print(
        f"Loading teacher-forced KL prompts from [bold]{settings.prompts.dataset}[/]..."
    )
    prompts = load_prompt_set(load, settings.prompts, f"[{SETTINGS_TABLE}] prompts")
    print(f"* [bold]{len(prompts)}[/] prompts loaded")
    return prompts


def start_engine(
    settings: TeacherForcedKLSettings,
    heretic_settings: Any,
    model: PromptModel,
    prompts: list[Any],
) -> TeacherForcedKLEngine:
    """
    Builds the engine from the scorer's settings and heretic's batch size, and the
    reference from the original `model`: the start-up of the scorer on both hosts.
    """
    print(
        f"* Generating the original model's [bold]{settings.kl_tokens}[/]-token "
        "reference continuations for teacher-forced KL divergence..."
    )
    engine = TeacherForcedKLEngine(
        kl_tokens=settings.kl_tokens,
        batch_size=settings.batch_size or host_batch_size(heretic_settings),
        position_weight_decay=settings.position_weight_decay,
        reference_storage=settings.reference_storage,
        log=print_item,
    )
    engine.build_reference(model, prompts)
    return engine
