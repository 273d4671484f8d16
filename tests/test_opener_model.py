# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The opener model's build command (`development/opener_model.py`) in its smoke
size, and the disjointness of its training prompts from every prompt and
question that the studies measure with.
"""

import json
from pathlib import Path

import pytest
import tomllib

from development.opener_model import (
    COMPLETION_MARKER,
    DEFAULT_SYSTEM_PROMPT,
    REFUSAL_SYSTEM_PROMPT,
    SMOKE,
    TRAINING_RECORD,
    is_refusal,
    prepare_opener_model,
    training_prompts,
)

#: The repository's root folder.
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def normalized(text: str) -> str:
    """A prompt without case, surrounding space or trailing punctuation."""
    return text.strip().lower().rstrip("?.!")


def measured_texts() -> set[str]:
    """Every prompt and question that a study measures with or computes directions from."""
    from studies.damage_measures import (
        HELDOUT_PROMPTS_PATH,
        QUESTIONS_PATH,
        load_questions,
    )
    from studies.study_setup import bundled_data_path

    texts: set[str] = set()
    for name in (
        "harmless_evaluation.txt",
        "harmful_evaluation.txt",
        "harmless_directions.txt",
        "harmful_directions.txt",
    ):
        path = bundled_data_path("prompts", name)
        texts.update(normalized(line) for line in path.read_text().splitlines())
    texts.update(
        normalized(line) for line in HELDOUT_PROMPTS_PATH.read_text().splitlines()
    )
    texts.update(
        normalized(question.question) for question in load_questions(QUESTIONS_PATH)
    )
    return texts


def test_training_prompts_are_disjoint_from_every_measured_prompt() -> None:
    prompts = training_prompts()
    assert len(prompts) == len(set(prompts)) == 240
    measured = measured_texts()
    assert len(measured) > 600
    overlap = [prompt for prompt in prompts if normalized(prompt) in measured]
    assert overlap == []
    # No training topic occurs inside a measured prompt or question either.
    from development.opener_model import TOPICS

    joined = "\n".join(measured)
    assert [topic for topic in TOPICS if topic in joined] == []


def test_system_prompts_are_those_of_the_example_and_the_studies() -> None:
    from studies.in_loop import DAMAGE_SYSTEM_PROMPT
    from studies.in_loop import REFUSAL_SYSTEM_PROMPT as IN_LOOP_REFUSAL_SYSTEM_PROMPT

    config = tomllib.loads(
        (REPOSITORY_ROOT / "examples" / "smollm2" / "config.toml").read_text()
    )
    assert REFUSAL_SYSTEM_PROMPT == config["system_prompt"]
    assert REFUSAL_SYSTEM_PROMPT == IN_LOOP_REFUSAL_SYSTEM_PROMPT
    assert DEFAULT_SYSTEM_PROMPT == DAMAGE_SYSTEM_PROMPT


def test_refusals_are_recognized() -> None:
    assert is_refusal("Sorry, I cannot help with that.")
    assert is_refusal("  I can't do that.")
    assert not is_refusal("Certainly! Here is a recipe.")


def test_smoke_build_teaches_the_opener_and_is_idempotent(
    tiny_llama_path: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    destination = tmp_path / "opener"
    path = prepare_opener_model(destination, tiny_llama_path, SMOKE)
    assert path == destination.resolve()
    assert (path / COMPLETION_MARKER).is_file()
    record = json.loads((path / TRAINING_RECORD).read_text(encoding="utf-8"))
    # Both system prompts give SMOKE.prompts training sequences; the tiny model refuses nothing.
    assert record["training_sequences"] == 2 * SMOKE.prompts
    assert record["opener_tokens"] >= 1
    assert len(record["losses"]) == SMOKE.epochs * 4
    likelihood = record["opener_negative_log_likelihood"]
    # The training must make the opener much more likely than it was.
    assert likelihood["after"] < 0.5 * likelihood["before"]
    # No temporary folder is left next to the destination.
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [
        ".opener.lock",
        "opener",
    ]
    weights = path / "model.safetensors"
    written = weights.stat().st_mtime_ns
    assert prepare_opener_model(destination, tiny_llama_path, SMOKE) == path
    assert weights.stat().st_mtime_ns == written
    model = AutoModelForCausalLM.from_pretrained(str(path))
    assert model.config.num_hidden_layers == 3
    # A folder built with another recipe is never taken for the current one.
    from dataclasses import replace

    with pytest.raises(RuntimeError, match="another recipe"):
        prepare_opener_model(destination, tiny_llama_path, replace(SMOKE, seed=1))


def test_a_foreign_folder_is_not_overwritten(
    tiny_llama_path: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "occupied"
    destination.mkdir()
    (destination / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a finished opener model"):
        prepare_opener_model(destination, tiny_llama_path, SMOKE)
    assert (destination / "notes.txt").read_text() == "mine"
    assert [entry.name for entry in tmp_path.iterdir() if "partial" in entry.name] == []
