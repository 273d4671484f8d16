# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
What heretic master's evaluator sees of the scorer: the observations that
`tests/master/test_plugin_contract.py` checks. Importing this module imports
heretic master's `heretic.plugin` and `heretic.scorer`.
"""

import os
from pathlib import Path
from typing import Any

import heretic.plugin as plugin
import heretic.scorer as scorer
from heretic.config import DatasetSpecification

import heretic_teacher_forced_kl
from development.damage import damage
from development.heretic_host import heretic_model
from heretic_teacher_forced_kl import TeacherForcedKL
from heretic_teacher_forced_kl.adapters import scorer as scorer_module


def settings_from_table(scorer_class: type, model_extra: dict[str, Any]) -> Any:
    """Validates a scorer's settings the way heretic's evaluator does."""
    table = plugin.get_plugin_namespace(model_extra, f"scorer.{scorer_class.__name__}")
    allowed = set(scorer_class.get_settings_model().model_fields)
    return scorer_class.validate_settings(
        {k: v for k, v in table.items() if k in allowed}
    )


def error_of(function: Any) -> str:
    """The message of the exception `function` raises, or "" when it raises none."""
    try:
        function()
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {error}"
    return ""


def observe(
    model_path: Path, prompt_file: str, empty_prompt_file: str
) -> dict[str, Any]:
    """Exercises the scorer on the model at `model_path` and returns what was seen."""
    observations: dict[str, Any] = {}

    observations["subclasses_real_scorer"] = issubclass(TeacherForcedKL, scorer.Scorer)
    observations["loaded_by_import_path"] = (
        plugin.load_plugin("heretic_teacher_forced_kl.TeacherForcedKL", scorer.Scorer)
        is TeacherForcedKL
    )
    file_class = plugin.load_plugin(
        f"{scorer_module.__file__}:TeacherForcedKL", scorer.Scorer
    )
    observations["loaded_by_file_path"] = (
        file_class.__name__ == "TeacherForcedKL"
        and issubclass(file_class, scorer.Scorer)
    )
    os.chdir(Path(scorer_module.__file__).parent)
    relative_class = plugin.load_plugin("scorer.py:TeacherForcedKL", scorer.Scorer)
    observations["loaded_by_relative_file_path"] = (
        relative_class.__name__ == "TeacherForcedKL"
    )
    observations["contract_error"] = error_of(TeacherForcedKL.validate_contract)
    observations["defines_init"] = "__init__" in TeacherForcedKL.__dict__

    table_settings = settings_from_table(
        TeacherForcedKL,
        {
            "scorer": {
                "TeacherForcedKL": {
                    "kl_tokens": 4,
                    "position_weight_decay": 0.5,
                    "typo": 1,
                }
            }
        },
    )
    observations["table_kl_tokens"] = table_settings.kl_tokens
    observations["table_decay"] = table_settings.position_weight_decay
    observations["default_kl_tokens"] = settings_from_table(
        TeacherForcedKL, {}
    ).kl_tokens
    observations["default_prompts"] = settings_from_table(
        TeacherForcedKL, {}
    ).prompts.dataset
    for name, value in {
        "zero": 0,
        "negative": -2,
        "fraction": 2.5,
        "text": "three",
    }.items():
        observations[f"bad_kl_tokens_{name}"] = error_of(
            lambda value=value: settings_from_table(
                TeacherForcedKL, {"scorer": {"TeacherForcedKL": {"kl_tokens": value}}}
            )
        )

    model = heretic_model(model_path, batch_size=3)
    heretic_settings = model.settings

    def make_scorer(prompts: str, kl_tokens: int = 3) -> Any:
        settings = TeacherForcedKL.validate_settings(
            {
                "prompts": DatasetSpecification(dataset=prompts).model_dump(),
                "kl_tokens": kl_tokens,
            }
        )
        return TeacherForcedKL(heretic_settings=heretic_settings, settings=settings)

    context = plugin.Context(heretic_settings, model)
    instance = make_scorer(prompt_file)
    instance.init(context)
    baseline = instance.get_baseline_score(context)
    original = instance.get_score(plugin.Context(heretic_settings, model))
    damage(model, strength=0.05)
    damaged = instance.get_score(plugin.Context(heretic_settings, model))
    observations["baseline_is_score"] = isinstance(baseline, scorer.Score)
    observations["baseline_value"] = baseline.value
    observations["original_is_score"] = isinstance(original, scorer.Score)
    observations["original_value"] = original.value
    observations["damaged_value"] = damaged.value
    observations["damaged_rich"] = damaged.rich_display
    observations["damaged_markdown"] = damaged.md_display
    observations["score_name"] = instance.score_name
    observations["reproducible"] = instance.reproducible

    model.reset_model()
    single = make_scorer(prompt_file, kl_tokens=1)
    single.init(plugin.Context(heretic_settings, model))
    built_in_baseline = plugin.Context(heretic_settings, model).get_logits(
        single.prompts
    )
    damage(model, strength=0.05)
    built_in_current = plugin.Context(heretic_settings, model).get_logits(
        single.prompts
    )
    import torch.nn.functional as F

    observations["built_in_first_token_kl"] = F.kl_div(
        F.log_softmax(built_in_current, dim=-1),
        F.log_softmax(built_in_baseline, dim=-1),
        reduction="batchmean",
        log_target=True,
    ).item()
    observations["single_token_value"] = single.get_score(
        plugin.Context(heretic_settings, model)
    ).value

    observations["empty_prompts_error"] = error_of(
        lambda: make_scorer(empty_prompt_file).init(
            plugin.Context(heretic_settings, model)
        )
    )
    observations["missing_prompts_error"] = error_of(
        lambda: make_scorer("/nonexistent/prompts.txt").init(
            plugin.Context(heretic_settings, model)
        )
    )
    observations["no_model_error"] = error_of(
        lambda: make_scorer(prompt_file).init(plugin.Context(heretic_settings, None))
    )
    observations["package_version"] = heretic_teacher_forced_kl.__version__
    return observations
