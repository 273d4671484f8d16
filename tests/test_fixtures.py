# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
"""Checks that the shared test fixtures give what the other tests rely on."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from development import smollm2
from development.tiny_models import (
    END_OF_TEXT_TOKEN,
    MESSAGE_END_TOKEN,
    MESSAGE_START_TOKEN,
    build_tiny_model,
)
from tests.support.prompt_files import PromptFileWriter

TINY_MODELS = [
    pytest.param("tiny_llama_path", "LlamaForCausalLM", id="llama"),
    pytest.param("tiny_qwen2_path", "Qwen2ForCausalLM", id="qwen2"),
]

SYSTEM_PROMPT = "You are a helpful assistant."
FIRST_QUESTION = "What is the capital of France?"
SECOND_QUESTION = "Write a short poem about the sea."


def load(path: Path) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Load a model folder with the plain Auto classes, in evaluation mode."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return tokenizer, model


def greedy_answer(
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    question: str,
    system_prompt: str | None,
    max_new_tokens: int,
) -> tuple[list[int], str]:
    """Generate greedily through the chat template; return token ids and text."""
    messages: list[dict[str, str]] = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": question})
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False
        )
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return new_tokens.tolist(), tokenizer.decode(new_tokens, skip_special_tokens=True)


@pytest.mark.parametrize(("fixture_name", "class_name"), TINY_MODELS)
def test_tiny_model_loads_with_auto_classes(
    request: pytest.FixtureRequest, fixture_name: str, class_name: str
) -> None:
    path: Path = request.getfixturevalue(fixture_name)
    tokenizer, model = load(path)

    assert type(model).__name__ == class_name
    assert model.config.num_hidden_layers >= 3
    assert len(model.model.layers) == model.config.num_hidden_layers
    assert model.config.hidden_size == 64
    assert model.dtype == torch.float32
    # The output layer has its own weights, not the embedding matrix.
    output_weights = model.lm_head.weight
    assert output_weights.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert model.config.vocab_size == len(tokenizer)

    end_id = tokenizer.convert_tokens_to_ids(MESSAGE_END_TOKEN)
    padding_id = tokenizer.convert_tokens_to_ids(END_OF_TEXT_TOKEN)
    assert tokenizer.eos_token == MESSAGE_END_TOKEN
    assert tokenizer.pad_token == END_OF_TEXT_TOKEN
    assert tokenizer.eos_token_id == end_id
    assert model.generation_config.eos_token_id == end_id
    assert model.generation_config.pad_token_id == padding_id
    assert (path / "generation_config.json").is_file()

    total_bytes = sum(file.stat().st_size for file in path.iterdir())
    assert total_bytes < 2 * 1024 * 1024


@pytest.mark.parametrize(("fixture_name", "class_name"), TINY_MODELS)
def test_tiny_chat_template_is_chatml(
    request: pytest.FixtureRequest, fixture_name: str, class_name: str
) -> None:
    path: Path = request.getfixturevalue(fixture_name)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": FIRST_QUESTION},
    ]

    with_prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    assert with_prompt == (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{FIRST_QUESTION}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    without_prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=False, tokenize=False
    )
    assert without_prompt.endswith(f"{FIRST_QUESTION}<|im_end|>\n")

    # Heretic tokenizes the rendered chat with the default
    # add_special_tokens=True, so the tokenizer must not add anything itself.
    identifiers = tokenizer(with_prompt)["input_ids"]
    assert identifiers[0] == tokenizer.convert_tokens_to_ids(MESSAGE_START_TOKEN)
    assert tokenizer.decode(identifiers) == with_prompt


@pytest.mark.parametrize(("fixture_name", "class_name"), TINY_MODELS)
def test_tiny_model_continuations_differ_between_prompts(
    request: pytest.FixtureRequest, fixture_name: str, class_name: str
) -> None:
    path: Path = request.getfixturevalue(fixture_name)
    tokenizer, model = load(path)

    first, _ = greedy_answer(tokenizer, model, FIRST_QUESTION, SYSTEM_PROMPT, 8)
    second, _ = greedy_answer(tokenizer, model, SECOND_QUESTION, SYSTEM_PROMPT, 8)
    assert len(first) > 0
    assert len(second) > 0
    assert first != second


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_tiny_model_build_is_fast_and_reproducible(
    tmp_path: Path, architecture: str
) -> None:
    started = time.monotonic()
    first_path = build_tiny_model(tmp_path / "first", architecture, seed=7)
    elapsed = time.monotonic() - started
    assert elapsed < 5.0

    second_path = build_tiny_model(tmp_path / "second", architecture, seed=7)
    other_path = build_tiny_model(
        tmp_path / "other", architecture, seed=8, num_hidden_layers=4
    )

    _, first = load(first_path)
    _, second = load(second_path)
    _, other = load(other_path)
    assert other.config.num_hidden_layers == 4
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert not torch.equal(
        first.model.embed_tokens.weight, other.model.embed_tokens.weight
    )


@pytest.mark.parametrize(("fixture_name", "class_name"), TINY_MODELS)
def test_tiny_model_loads_in_heretic(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fixture_name: str,
    class_name: str,
) -> None:
    path: Path = request.getfixturevalue(fixture_name)
    # Heretic's settings read the command line, HERETIC_* variables and
    # ./config.toml; none of the test session's may leak in.
    monkeypatch.setattr(sys, "argv", ["heretic"])
    monkeypatch.chdir(tmp_path)
    for variable in [name for name in os.environ if name.startswith("HERETIC_")]:
        monkeypatch.delenv(variable)

    from heretic.config import Settings
    from heretic.model import Model
    from heretic.utils import Prompt

    settings = Settings(
        model=str(path),
        device_map="cpu",
        dtypes=["float32"],
        max_response_length=8,
    )
    model = Model(settings)

    assert len(model.get_layers()) >= 3
    assert {"attn.o_proj", "mlp.down_proj"} <= set(model.get_abliterable_components())
    responses = model.get_responses(
        [
            Prompt(system=SYSTEM_PROMPT, user=FIRST_QUESTION),
            Prompt(system=SYSTEM_PROMPT, user=SECOND_QUESTION),
        ]
    )
    assert len(responses) == 2
    assert responses[0] != responses[1]


def test_write_prompt_file(write_prompt_file: PromptFileWriter) -> None:
    prompts = ["First prompt.", "Second prompt, with a comma.", "Third?"]
    path = write_prompt_file(prompts)
    assert path.name == "prompts.txt"
    assert path.read_text(encoding="utf-8").splitlines() == prompts

    named = write_prompt_file(["Only one."], "named.txt")
    assert named.name == "named.txt"
    assert named.read_text(encoding="utf-8") == "Only one.\n"

    with pytest.raises(ValueError):
        write_prompt_file(["Two\nlines"])
    with pytest.raises(ValueError):
        write_prompt_file(["   "])


@pytest.mark.smollm2
def test_smollm2_folder_is_plain_and_complete(smollm2_path: Path) -> None:
    assert smollm2.is_prepared(smollm2_path)
    names = {file.name for file in smollm2_path.iterdir()}
    assert "model.safetensors" in names
    assert "config.json" in names
    assert "generation_config.json" in names
    assert "tokenizer.json" in names
    assert not any(name.endswith(".gguf") for name in names)

    # A second preparation finds the marker and does no work.
    started = time.monotonic()
    assert smollm2.prepare_smollm2(smollm2_path) == smollm2_path
    assert time.monotonic() - started < 1.0


@pytest.mark.smollm2
def test_smollm2_loads_and_answers_paris(smollm2_path: Path) -> None:
    tokenizer, model = load(smollm2_path)

    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30
    assert model.config.vocab_size == 49152
    assert getattr(model.config, "quantization_config", None) is None
    assert model.dtype == torch.float32
    assert tokenizer.eos_token == MESSAGE_END_TOKEN
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id

    rendered = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": FIRST_QUESTION},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert rendered.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n")
    assert rendered.endswith("<|im_start|>assistant\n")

    _, answer = greedy_answer(tokenizer, model, FIRST_QUESTION, None, 24)
    assert "Paris" in answer
