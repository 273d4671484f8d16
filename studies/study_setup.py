# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Setting up the evidence study: the model, the bundled prompts and the refusal directions.

Everything here goes through heretic-llm's own code: its `Settings` and `Model`
(PEFT-wrapped, abliteration in LoRA adapters), its `load_prompts` for the
bundled text files, and `Model.get_residuals_mean` for the refusal directions,
which are computed exactly as heretic 1.4.0's `main.run` computes them.
"""

import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from heretic.config import DatasetSpecification, Settings
from heretic.model import Model
from heretic.utils import Prompt, load_prompts
from torch import Tensor

#: The repository that holds this study.
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

#: The script that converts SmolLM2-135M-Instruct into a plain model folder.
PREPARE_SMOLLM2_SCRIPT = REPOSITORY_ROOT / "scripts" / "prepare_smollm2.py"

#: The `--model` value that selects the converted SmolLM2-135M-Instruct.
SMOLLM2 = "smollm2"


def load_prepare_smollm2_module() -> ModuleType:
    """Imports `scripts/prepare_smollm2.py` from its file path (the folder is no package)."""
    existing = sys.modules.get("prepare_smollm2")
    if existing is not None:
        return existing
    specification = importlib.util.spec_from_file_location(
        "prepare_smollm2", PREPARE_SMOLLM2_SCRIPT
    )
    if specification is None or specification.loader is None:
        raise ImportError(f"Cannot import {PREPARE_SMOLLM2_SCRIPT}.")
    module = importlib.util.module_from_spec(specification)
    sys.modules["prepare_smollm2"] = module
    specification.loader.exec_module(module)
    return module


def resolve_model_path(argument: str) -> Path:
    """
    Returns the model folder that `--model` names: "smollm2" (converted once per
    machine by `scripts/prepare_smollm2.py`) or the path of a saved model folder.
    """
    if argument == SMOLLM2:
        path: Path = load_prepare_smollm2_module().prepare_smollm2()
        return path
    path = Path(argument).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(
            f"--model: {argument!r} is not a model folder with config.json; "
            f"give a saved Hugging Face model folder or {SMOLLM2!r}."
        )
    return path


@contextmanager
def neutral_command_line() -> Iterator[None]:
    """
    Runs the block with the command line `heretic` in a folder without
    `config.toml`, since heretic's `Settings` parse both.
    """
    saved_arguments = sys.argv
    saved_directory = os.getcwd()
    with tempfile.TemporaryDirectory() as directory:
        sys.argv = ["heretic"]
        os.chdir(directory)
        try:
            yield
        finally:
            sys.argv = saved_arguments
            os.chdir(saved_directory)


def load_heretic_model(model_path: Path, batch_size: int, seed: int) -> Model:
    """
    Loads `model_path` as heretic does, on the CPU in float32, with heretic's
    default settings otherwise (system prompt, row normalization, direction
    orthogonalization, no winsorization). The seed is set because heretic's
    full row normalization reseeds `torch.svd_lowrank` with it.
    """
    with neutral_command_line():
        settings = Settings(
            model=str(model_path),
            device_map="cpu",
            dtypes=["float32"],
            batch_size=batch_size,
            seed=seed,
        )
        return Model(settings)


def bundled_data_path(*parts: str) -> Path:
    """The path of a data file bundled with heretic-teacher-forced-kl."""
    resource = files("heretic_teacher_forced_kl").joinpath("data", *parts)
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(
            f"The bundled data file {path} is missing; reinstall the package."
        )
    return path


def load_bundled_prompts(model: Model, name: str, count: int) -> list[Prompt]:
    """
    Loads the first `count` prompts of the bundled prompt file `name` through
    heretic's `load_prompts`, which adds heretic's system prompt.
    """
    path = bundled_data_path("prompts", name)
    prompts = load_prompts(
        model.settings, DatasetSpecification(dataset=str(path), split=f"[:{count}]")
    )
    if len(prompts) < count:
        raise ValueError(
            f"{name} holds only {len(prompts)} prompts, but {count} were requested; "
            "lower the matching option."
        )
    return prompts


def refusal_directions(
    model: Model, harmless_prompts: list[Prompt], harmful_prompts: list[Prompt]
) -> Tensor:
    """
    Computes heretic's per-layer refusal directions: the normalized difference
    of the mean residuals of harmful and harmless prompts at the first generated
    token, orthogonalized against the harmless direction when heretic's
    `orthogonalize_direction` setting is on (its default), as in heretic
    1.4.0's `main.run`. The result has one row per layer plus the embeddings.
    """
    harmless_means = model.get_residuals_mean(harmless_prompts)
    harmful_means = model.get_residuals_mean(harmful_prompts)
    directions = F.normalize(harmful_means - harmless_means, p=2, dim=1)
    if model.settings.orthogonalize_direction:
        harmless_directions = F.normalize(harmless_means, p=2, dim=1)
        projection = torch.sum(directions * harmless_directions, dim=1)
        directions = directions - projection.unsqueeze(1) * harmless_directions
        directions = F.normalize(directions, p=2, dim=1)
    return directions
