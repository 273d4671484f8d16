# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Prompts longer than the model's context window (with the reference tokens)
are scored, with one warning at reference building that counts them; on a
model with learned absolute positions (GPT-2), which cannot read them at all,
they stop the measurement with one line.
"""

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from development.heretic_host import heretic_model, prompts
from heretic_teacher_forced_kl.metric.engine import TeacherForcedKLEngine
from heretic_teacher_forced_kl.metric.reference import context_window

KL_TOKENS = 3


@pytest.fixture(scope="module")
def model(tiny_llama_path: Path) -> Any:
    return heretic_model(tiny_llama_path, batch_size=3)


def read_lengths(model: Any) -> list[int]:
    """
    How many tokens the teacher-forced pass reads per test prompt: the prompt as
    heretic's own generation path tokenizes it, plus KL_TOKENS - 1 reference tokens.
    """
    lengths = []
    for prompt in prompts():
        inputs, _ = model.generate([prompt], max_new_tokens=1)
        lengths.append(int(inputs["attention_mask"].sum()) + KL_TOKENS - 1)
    return lengths


def build_with_window(model: Any, window: int) -> tuple[list[str], float]:
    """Builds a reference with the model's context window set to `window`."""
    config = model.model.config
    saved = config.max_position_embeddings
    config.max_position_embeddings = window
    messages: list[str] = []
    try:
        engine = TeacherForcedKLEngine(
            kl_tokens=KL_TOKENS, batch_size=3, log=messages.append
        )
        engine.build_reference(model, prompts())
        score = engine.score(model.model)
    finally:
        config.max_position_embeddings = saved
    return [message for message in messages if "context window" in message], score


def test_prompts_beyond_the_window_are_counted_in_one_warning(model: Any) -> None:
    lengths = read_lengths(model)
    # A window that the longer prompts exceed and that the others fit exactly or within.
    window = sorted(lengths)[len(lengths) // 2]
    expected = sum(length > window for length in lengths)
    assert 0 < expected < len(lengths)
    warnings, score = build_with_window(model, window)
    assert warnings == [
        f"Warning: {expected} of {len(lengths)} prompts are longer than the model's "
        f"context window of {window} tokens (max_position_embeddings) together with "
        f"the {KL_TOKENS - 1} reference tokens that the teacher-forced pass reads "
        f"(longest: {max(lengths)} tokens); their KL is measured at positions the "
        "model was not trained for. Shorten these prompts or lower kl_tokens for a "
        "reliable measure"
    ]
    # They are scored all the same: the original model scores 0.
    assert math.isfinite(score) and abs(score) < 1e-6


def test_no_warning_when_every_prompt_fits(model: Any) -> None:
    warnings, _ = build_with_window(model, max(read_lengths(model)))
    assert warnings == []


class TextConfig:
    max_position_embeddings = 4096


class MultimodalConfig:
    """A multimodal configuration: the context window is its text model's."""

    def get_text_config(self) -> TextConfig:
        return TextConfig()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (SimpleNamespace(max_position_embeddings=2048), 2048),
        (MultimodalConfig(), 4096),
        (SimpleNamespace(), None),
        (SimpleNamespace(max_position_embeddings=None), None),
    ],
)
def test_context_window_of_a_configuration(config: Any, expected: int | None) -> None:
    assert context_window(SimpleNamespace(config=config)) == expected


@pytest.fixture(scope="module")
def tiny_gpt2_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 model with 40 learned absolute positions."""
    from development.tiny_models import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("tiny-gpt2"), "gpt2", max_position_embeddings=40
    )


def test_prompt_beyond_a_learned_position_table_is_one_line(
    tiny_gpt2_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A GPT-2-style model has no position beyond its table: a longer prompt
    # cannot be read at all (torch raises "index out of range in self").
    from heretic_teacher_forced_kl.cli.main import main

    long_prompt = "Tell me a long story about " + "the sea and the sky and " * 20
    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text(f"Hi\n{long_prompt}\n")
    arguments = ["compare", str(tiny_gpt2_path), str(tiny_gpt2_path)]
    options = ["--prompts", str(prompt_file), "--device", "cpu", "--quiet"]
    status = main([*arguments, *options, "--kl-tokens", "3"])
    output = capsys.readouterr().out.strip()
    assert status == 2
    assert output.splitlines()[-1] == (
        "heretic-kl: error: A prompt of a batch of 2 (the longest: 'Tell me a long "
        "story about the sea and the sky and the se...') with its 3 reference "
        "tokens is longer than the 40 positions this model has learned (absolute "
        "position embeddings, as in GPT-2), so the model cannot read it; shorten "
        "the prompts or lower kl_tokens."
    )
    # Prompts that fit are measured as usual.
    prompt_file.write_text("Hi\nName a fruit.\n")
    assert main([*arguments, *options, "--kl-tokens", "2"]) == 0
