# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Setting up the evidence study: the model, the bundled prompts and the refusal directions.

Everything here goes through heretic-llm's own code: its `Settings` and `Model`
(PEFT-wrapped, abliteration in LoRA adapters), its `load_prompts` for the
bundled text files, and `Model.get_residuals_mean` for the refusal directions,
which are computed exactly as heretic 1.4.0's `main.run` computes them.
"""

import subprocess
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F
from heretic.config import DatasetSpecification, Settings
from heretic.model import Model
from heretic.utils import Prompt, load_prompts
from torch import Tensor

from development.heretic_host import neutral_command_line
from development.opener_model import prepare_opener_model
from development.smollm2 import prepare_smollm2

#: The repository's root folder.
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

#: The `--model` value that selects the converted SmolLM2-135M-Instruct.
SMOLLM2 = "smollm2"

#: The `--model` value that selects the opener model of the blind-spot studies
#: (SmolLM2 taught to open harmless answers with "Certainly! ",
#: `development/opener_model.py`), built once per machine when missing.
OPENER = "opener"


def resolve_model_path(argument: str) -> Path:
    """
    Returns the model folder that `--model` names: "smollm2" (converted once per
    machine by `development/smollm2.py`), "opener" (built once per machine by
    `development/opener_model.py`) or the path of a saved model folder.
    """
    if argument == SMOLLM2:
        path: Path = prepare_smollm2()
        return path
    if argument == OPENER:
        opener_path: Path = prepare_opener_model()
        return opener_path
    path = Path(argument).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(
            f"--model: {argument!r} is not a model folder with config.json; "
            f"give a saved Hugging Face model folder, {SMOLLM2!r} or {OPENER!r}."
        )
    return path


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


def load_prompt_file(model: Model, path: Path, count: int) -> list[Prompt]:
    """
    Loads the first `count` prompts of the prompt file `path` through heretic's
    `load_prompts`, which adds heretic's system prompt.
    """
    prompts = load_prompts(
        model.settings, DatasetSpecification(dataset=str(path), split=f"[:{count}]")
    )
    if len(prompts) < count:
        raise ValueError(
            f"{path.name} holds only {len(prompts)} prompts, but {count} were "
            "requested; lower the matching option."
        )
    return prompts


def load_bundled_prompts(model: Model, name: str, count: int) -> list[Prompt]:
    """The first `count` prompts of the package's bundled prompt file `name`."""
    return load_prompt_file(model, bundled_data_path("prompts", name), count)


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


def commit_paths(
    paths: Sequence[Path], message: str, log: Callable[[str], None]
) -> bool:
    """
    Commits exactly `paths` (files or folders) to the current branch of the git
    repository that holds them, so that a long study's state survives the end of
    a working stretch. A failure (another lane committing at the same moment)
    is retried with a growing pause and at worst logged, never raised: the
    state on disk stays valid and the next commit takes it along. Returns
    whether the paths are committed (nothing new to commit counts as
    committed).
    """
    absolute = [str(path.resolve()) for path in paths]
    # git runs in the folder of the first path, so that a study whose output
    # lies in another repository (a test's scratch repository) commits there.
    folder = (
        Path(absolute[0]) if Path(absolute[0]).is_dir() else Path(absolute[0]).parent
    )
    error = ""
    for attempt in range(1, 6):
        added = subprocess.run(
            ["git", "-C", str(folder), "add", "--", *absolute],
            capture_output=True,
            text=True,
            check=False,
        )
        committed = subprocess.run(
            ["git", "-C", str(folder), "commit", "-q", "-m", message, "--", *absolute],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode == 0 and committed.returncode == 0:
            return True
        output = committed.stdout + committed.stderr
        if "nothing to commit" in output or "no changes added" in output:
            return True
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", *absolute],
            capture_output=True,
            text=True,
            check=False,
        )
        if status.returncode == 0 and not status.stdout.strip():
            return True
        error = (added.stderr + output).strip()
        time.sleep(attempt * 2)
    log(f"could not commit {', '.join(absolute)}: {error}")
    return False
