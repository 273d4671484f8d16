# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Memory and robustness of the teacher-forced KL engine.

Logits exist only at the scored positions, the reference lives where the
storage policy says, one batch's KL step needs at most three times that
batch's scored logits, an out-of-memory error splits a batch for good instead
of failing the trial, and no trial tokenizes or generates anything.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from heretic.model import Model

from development.damage import damage
from development.heretic_host import heretic_model, prompts
from development.memory_peak import peak_cpu_bytes
from heretic_teacher_forced_kl import TeacherForcedKLEngine
from heretic_teacher_forced_kl.metric.divergence import (
    FLOAT32_BYTES,
    batch_divergence,
    chunked_log_probabilities,
    kl_divergence_per_position,
    log_probabilities,
    rows_per_chunk,
)
from heretic_teacher_forced_kl.metric.memory import (
    DEVICE_STORAGE_SHARE,
    ReferenceStorage,
    plan_reference_storage,
    storage_device_for,
)
from tests.support.tolerances import model_kl_tolerance

KL_TOKENS = 4
CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(tiny_llama_path: Path) -> Model:
    """heretic's model of the tiny Llama."""
    return heretic_model(tiny_llama_path, batch_size=3)


@pytest.fixture(scope="module")
def float64_model(tiny_llama_path: Path) -> Model:
    """
    heretic's model of the tiny Llama in float64, for comparisons of scores
    computed in different orders (tests/support/tolerances.py says why).
    """
    return heretic_model(tiny_llama_path, batch_size=3, dtypes=["float64"])


def tolerance(model: Model, kl: float) -> float:
    """How far two float64 computations of the mean KL `kl` of `model` may differ."""
    return model_kl_tolerance(model, prompts(), KL_TOKENS, kl)


@pytest.fixture(autouse=True)
def original_model(model: Model) -> Iterator[None]:
    """Every test starts from the original model."""
    model.reset_model()
    yield
    model.reset_model()


def engine_for(
    model: Model,
    batch_size: int = 3,
    log: Callable[[str], None] | None = None,
    **settings: Any,
) -> TeacherForcedKLEngine:
    """An engine whose reference was built from `model` as it is now."""
    engine = TeacherForcedKLEngine(
        kl_tokens=KL_TOKENS,
        batch_size=batch_size,
        log=log if log is not None else (lambda _message: None),
        **settings,
    )
    engine.build_reference(model, prompts())
    return engine


# Logits only at the scored positions.


def test_output_layer_sees_only_the_scored_positions(model: Model) -> None:
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    contiguous: list[bool] = []

    def record(
        _module: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor
    ) -> None:
        shapes.append((tuple(inputs[0].shape), tuple(output.shape)))
        contiguous.append(inputs[0].is_contiguous())

    handle = model.model.get_output_embeddings().register_forward_hook(record)
    try:
        engine = engine_for(model)
        # Building the reference generates greedily (logits at one position per
        # step), then runs the teacher-forced pass (logits at KL_TOKENS positions).
        assert shapes
        assert all(1 <= positions <= KL_TOKENS for (_, positions, _), _ in shapes)
        shapes.clear()
        contiguous.clear()
        damage(model, strength=0.05)
        engine.measure(model.model, details=True)
    finally:
        handle.remove()

    assert len(shapes) == len(engine.batches)
    vocabulary = model.model.get_output_embeddings().weight.shape[0]
    for (batch_size, positions, _hidden), output_shape in shapes:
        assert positions == KL_TOKENS
        assert output_shape == (batch_size, KL_TOKENS, vocabulary)
    # The positions are selected by a tensor of indices, so the output layer gets
    # a contiguous input, which the CPU multiplies several times faster.
    assert engine.scored_logits.accepts_position_indices
    assert all(contiguous)


class PositionCountOnly(torch.nn.Module):
    """A model that takes `logits_to_keep` only as a count, like older custom code."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.position_tensors_refused = 0

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.inner.get_input_embeddings()

    def __getattr__(self, name: str) -> Any:
        # All but the forward pass (generate, configurations) is the inner model's.
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, **arguments: Any) -> Any:
        if isinstance(arguments.get("logits_to_keep"), torch.Tensor):
            self.position_tensors_refused += 1
            raise TypeError(
                "slice indices must be integers or None or have an __index__ method"
            )
        return self.inner(**arguments)


def test_a_model_that_takes_only_a_count_gets_the_same_score(
    float64_model: Model,
) -> None:
    model = float64_model
    model.reset_model()
    engine = engine_for(model)
    damage(model, strength=0.05)
    expected = engine.measure(model.model)

    wrapped = PositionCountOnly(model.model)
    fallback_engine = TeacherForcedKLEngine(
        kl_tokens=KL_TOKENS, batch_size=3, log=lambda _message: None
    )
    model.reset_model()
    original = model.model
    model.model = wrapped  # build_reference reads model.model.
    try:
        fallback_engine.build_reference(model, prompts())
    finally:
        model.model = original
    damage(model, strength=0.05)
    measured = fallback_engine.measure(wrapped)

    # It is asked once, falls back to a count, and is never asked again.
    assert wrapped.position_tensors_refused == 1
    # A strided and a contiguous output layer input may round differently.
    assert measured.counted.equal(expected.counted)
    assert abs(measured.mean - expected.mean) <= tolerance(model, expected.mean)
    model.reset_model()


# Where the reference lives.


def test_on_the_cpu_the_reference_stays_in_cpu_memory(model: Model) -> None:
    messages: list[str] = []
    for storage in ReferenceStorage:
        messages.clear()
        engine = engine_for(model, log=messages.append, reference_storage=storage)
        vocabulary = model.model.get_output_embeddings().weight.shape[0]
        assert engine.storage_device == CPU
        assert all(part.device == CPU for part in engine.reference_log_probabilities)
        assert engine.reference_bytes == len(prompts()) * KL_TOKENS * vocabulary * 4
        assert sum(part.numel() * 4 for part in engine.reference_log_probabilities) == (
            engine.reference_bytes
        )
        assert any("kept in CPU memory" in message for message in messages)


def test_reference_storage_decision_on_an_accelerator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    free_bytes = 8 * 2**30
    monkeypatch.setattr(
        torch.cuda, "mem_get_info", lambda device=None: (free_bytes, 2 * free_bytes)
    )
    fits = int(DEVICE_STORAGE_SHARE * free_bytes)

    assert storage_device_for(CUDA, fits, ReferenceStorage.AUTO) == CUDA
    assert storage_device_for(CUDA, fits + 1, ReferenceStorage.AUTO) == CPU
    assert storage_device_for(CUDA, 100 * free_bytes, ReferenceStorage.DEVICE) == CUDA
    assert storage_device_for(CUDA, 1, ReferenceStorage.CPU) == CPU
    for storage in ReferenceStorage:
        assert storage_device_for(CPU, 1, storage) == CPU


def test_storage_plan_reports_size_and_streaming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vocabulary = 1000
    prompt_count = 50
    reference_bytes = prompt_count * KL_TOKENS * vocabulary * 4
    # Free memory such that the reference takes more than the device share.
    free_bytes = int(reference_bytes / DEVICE_STORAGE_SHARE) - 1
    monkeypatch.setattr(
        torch.cuda, "mem_get_info", lambda device=None: (free_bytes, free_bytes)
    )

    plan = plan_reference_storage(
        CUDA, prompt_count, KL_TOKENS, vocabulary, ReferenceStorage.AUTO
    )
    assert plan.reference_bytes == reference_bytes
    assert plan.device == CPU
    assert "pinned CPU memory, streamed to the device per batch" in plan.description

    monkeypatch.setattr(
        torch.cuda, "mem_get_info", lambda device=None: (free_bytes + 8, free_bytes + 8)
    )
    plan = plan_reference_storage(
        CUDA, prompt_count, KL_TOKENS, vocabulary, ReferenceStorage.AUTO
    )
    assert plan.device == CUDA
    assert "kept on cuda:0" in plan.description


# The KL step's memory.


def synthetic_batch(
    prompts_count: int, positions: int, vocabulary: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random logits, a reference and targets of one batch."""
    generator = torch.Generator().manual_seed(0)
    logits = (
        3 * torch.randn(prompts_count, positions, vocabulary, generator=generator)
    ).to(dtype)
    reference = log_probabilities(
        logits.float() + torch.randn(logits.shape, generator=generator)
    )
    targets = torch.randint(vocabulary, (prompts_count, positions), generator=generator)
    return logits, reference, targets


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_kl_equals_the_plain_formula(dtype: torch.dtype) -> None:
    logits, reference, targets = synthetic_batch(5, 3, 3000, dtype)
    current = log_probabilities(logits)
    expected = kl_divergence_per_position(reference, current)
    # A chunk of 4 rows: 15 rows make three full chunks and a partial one.
    chunk_bytes = 4 * 3000 * FLOAT32_BYTES
    assert rows_per_chunk(3000, chunk_bytes) == 4

    result = batch_divergence(logits, reference, targets, chunk_bytes=chunk_bytes)
    assert torch.equal(result.kl, expected)
    assert torch.equal(chunked_log_probabilities(logits, chunk_bytes), current)
    index = targets.unsqueeze(-1)
    assert result.current_target_log_probabilities is not None
    assert result.reference_target_log_probabilities is not None
    assert result.top1_agreement is not None
    assert torch.equal(
        result.current_target_log_probabilities, current.gather(-1, index)[..., 0]
    )
    assert torch.equal(
        result.reference_target_log_probabilities, reference.gather(-1, index)[..., 0]
    )
    assert torch.equal(result.top1_agreement, current.argmax(-1) == targets)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kl_step_needs_at_most_three_times_the_scored_logits(
    dtype: torch.dtype,
) -> None:
    logits, reference, targets = synthetic_batch(4, 8, 32768, dtype)
    scored_logit_bytes = logits.numel() * FLOAT32_BYTES

    result, peak = peak_cpu_bytes(lambda: batch_divergence(logits, reference, targets))
    assert peak <= 3 * scored_logit_bytes
    # Computed at once, the plain formula holds the current log-probabilities and
    # three temporaries of the batch's full size.
    expected, plain_peak = peak_cpu_bytes(
        lambda: kl_divergence_per_position(reference, log_probabilities(logits))
    )
    assert plain_peak >= 4 * scored_logit_bytes
    assert torch.equal(result.kl, expected)


def test_large_batches_are_processed_in_bounded_chunks() -> None:
    logits, reference, _ = synthetic_batch(4, 8, 32768, torch.float32)
    chunk_bytes = 2 * 32768 * FLOAT32_BYTES
    result, peak = peak_cpu_bytes(
        lambda: batch_divergence(logits, reference, chunk_bytes=chunk_bytes)
    )
    # Three chunks at most, plus the per-position results: independent of the batch.
    assert (
        peak <= 3 * chunk_bytes + 4 * logits.shape[0] * logits.shape[1] * FLOAT32_BYTES
    )
    assert torch.equal(
        result.kl, kl_divergence_per_position(reference, log_probabilities(logits))
    )


# Out of memory inside a batch.


class OutOfMemoryAbove:
    """A forward pre-hook that fails like a full device for batches over `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.raised = 0

    def __call__(
        self,
        _module: torch.nn.Module,
        _arguments: tuple[Any, ...],
        keywords: dict[str, Any],
    ) -> None:
        if keywords["input_ids"].shape[0] > self.limit:
            self.raised += 1
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 20.00 GiB"
            )


def test_out_of_memory_splits_the_batch_and_keeps_the_score(
    float64_model: Model,
) -> None:
    model = float64_model
    model.reset_model()
    messages: list[str] = []
    engine = engine_for(model, batch_size=len(prompts()), log=messages.append)
    damage(model, strength=0.05)
    unsplit = engine.score(model.model)

    hook = OutOfMemoryAbove(limit=2)
    handle = model.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        split = engine.score(model.model)
        raised_first = hook.raised
        again = engine.score(model.model)
    finally:
        handle.remove()

    assert raised_first > 0
    assert abs(split - unsplit) <= tolerance(model, unsplit)
    assert all(batch.size <= 2 for batch in engine.batches)
    assert sum(batch.size for batch in engine.batches) == len(prompts())
    assert any(
        "Out of memory with a batch of 7 prompts" in message for message in messages
    )
    # Later trials keep the split batches and never fail again.
    assert hook.raised == raised_first
    assert abs(again - split) <= tolerance(model, split)
    model.reset_model()


def test_out_of_memory_while_building_the_reference(model: Model) -> None:
    hook = OutOfMemoryAbove(limit=3)
    handle = model.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        engine = engine_for(model, batch_size=len(prompts()))
    finally:
        handle.remove()
    assert hook.raised > 0
    assert len(engine.batches) == len(engine.reference_log_probabilities)
    assert all(batch.size <= 3 for batch in engine.batches)
    assert all(
        reference.shape[0] == batch.size
        for batch, reference in zip(
            engine.batches, engine.reference_log_probabilities, strict=True
        )
    )
    assert engine.score(model.model) == 0.0


def test_out_of_memory_with_a_single_prompt_is_raised(model: Model) -> None:
    engine = engine_for(model, batch_size=3)
    hook = OutOfMemoryAbove(limit=0)
    handle = model.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            engine.score(model.model)
    finally:
        handle.remove()
    # The batch was halved until a single prompt remained, which cannot be split.
    assert engine.batches[0].size == 1


# Nothing is rebuilt per trial.


def test_trials_neither_tokenize_nor_generate(
    model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counting(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*arguments: Any, **keywords: Any) -> Any:
            calls.append(name)
            return function(*arguments, **keywords)

        return wrapper

    tokenizer_type = type(model.tokenizer)
    monkeypatch.setattr(
        tokenizer_type, "__call__", counting("tokenize", tokenizer_type.__call__)
    )
    monkeypatch.setattr(
        tokenizer_type,
        "apply_chat_template",
        counting("chat template", tokenizer_type.apply_chat_template),
    )
    monkeypatch.setattr(model, "generate", counting("heretic generate", model.generate))
    monkeypatch.setattr(
        model.model, "generate", counting("Hugging Face generate", model.model.generate)
    )

    engine = engine_for(model)
    # The patches do see the reference being built.
    assert {
        "tokenize",
        "chat template",
        "heretic generate",
        "Hugging Face generate",
    } <= set(calls)
    calls.clear()

    damage(model, strength=0.05)
    first = engine.measure(model.model, details=True)
    token_tensors = [batch.input_ids for batch in engine.batches]
    second = engine.measure(model.model)
    assert calls == []
    # The token tensors of the first trial are the very tensors of the second.
    assert all(
        batch.input_ids is tensor
        for batch, tensor in zip(engine.batches, token_tensors, strict=True)
    )
    assert torch.equal(first.kl, second.kl)
