# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Sampling abliteration parameters the way heretic samples them.

heretic 1.4.0's objective (`heretic.main.run.objective`) draws, per trial, a
direction scope ("global" or "per layer"), a direction index in
[0.4, 0.9] x last layer index, and per abliterable component a max_weight in
[0.8, 1.5], a max_weight_position in [0.6, 1.0] x last layer index, a
min_weight fraction in [0, 1] (multiplied by max_weight) and a
min_weight_distance in [1, 0.6 x last layer index], all with Optuna's
`trial.suggest_*`. heretic's `TPESampler` draws its first `n_startup_trials`
trials (60 by default) with Optuna's `RandomSampler`, independently and
uniformly in these ranges. This module makes the same `suggest_*` calls, in the
same order and with the same names, on a study whose sampler is a seeded
`RandomSampler`: it reproduces heretic's random startup phase, not the
TPE-guided trials that follow it.
"""

from dataclasses import asdict, dataclass

import optuna
from heretic.model import AbliterationParameters
from optuna.samplers import RandomSampler
from optuna.trial import Trial


@dataclass
class SampledAbliteration:
    """
    One sampled abliteration: `direction_index` is None for the "per layer"
    scope (each layer uses its own direction), as in heretic; the sampled value
    is kept in `sampled_direction_index` for the record.
    """

    direction_scope: str
    sampled_direction_index: float
    parameters: dict[str, AbliterationParameters]

    @property
    def direction_index(self) -> float | None:
        """The direction index heretic passes to `Model.abliterate`."""
        return (
            None
            if self.direction_scope == "per layer"
            else self.sampled_direction_index
        )

    def record(self) -> dict[str, float | str]:
        """The parameters as one flat mapping, for the results table."""
        values: dict[str, float | str] = {
            "direction_scope": self.direction_scope,
            "direction_index": self.sampled_direction_index,
        }
        for component, parameters in self.parameters.items():
            for name, value in asdict(parameters).items():
                values[f"{component}.{name}"] = float(value)
        return values


def suggest_abliteration(
    trial: Trial, last_layer_index: int, components: list[str]
) -> SampledAbliteration:
    """Makes heretic 1.4.0's `suggest_*` calls on `trial`, in heretic's order."""
    direction_scope = trial.suggest_categorical(
        "direction_scope", ["global", "per layer"]
    )
    direction_index = trial.suggest_float(
        "direction_index", 0.4 * last_layer_index, 0.9 * last_layer_index
    )
    parameters: dict[str, AbliterationParameters] = {}
    for component in components:
        max_weight = trial.suggest_float(f"{component}.max_weight", 0.8, 1.5)
        max_weight_position = trial.suggest_float(
            f"{component}.max_weight_position",
            0.6 * last_layer_index,
            1.0 * last_layer_index,
        )
        # heretic samples min_weight as a fraction of max_weight.
        min_weight = trial.suggest_float(f"{component}.min_weight", 0.0, 1.0)
        min_weight_distance = trial.suggest_float(
            f"{component}.min_weight_distance", 1.0, 0.6 * last_layer_index
        )
        parameters[component] = AbliterationParameters(
            max_weight=max_weight,
            max_weight_position=max_weight_position,
            min_weight=min_weight * max_weight,
            min_weight_distance=min_weight_distance,
        )
    return SampledAbliteration(
        direction_scope=str(direction_scope),
        sampled_direction_index=float(direction_index),
        parameters=parameters,
    )


def sample_abliterations(
    count: int, seed: int, last_layer_index: int, components: list[str]
) -> list[SampledAbliteration]:
    """Samples `count` abliterations with a `RandomSampler` seeded with `seed`."""
    if last_layer_index < 2:
        raise ValueError(
            "The model needs at least 3 decoder layers; heretic's min_weight_distance "
            "range is empty otherwise."
        )
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(sampler=RandomSampler(seed=seed))
        return [
            suggest_abliteration(study.ask(), last_layer_index, components)
            for _ in range(count)
        ]
    finally:
        optuna.logging.set_verbosity(verbosity)
