# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Correctness of the teacher-forced KL engine on real heretic models.

Every test runs on tiny random Llama and Qwen2 models and on the real
SmolLM2-135M-Instruct, through heretic-llm's own `Model` (PEFT-wrapped,
left padding, heretic's chat formatting), loaded in float64: every numerical
tolerance is derived from float64's precision and the size of the sums
(`tests/support/tolerances.py` says why not float32's, and how).
"""

import copy
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from heretic.model import Model

from development.damage import damage
from development.heretic_host import heretic_model, prompts
from heretic_teacher_forced_kl import TeacherForcedKLEngine
from heretic_teacher_forced_kl.metric.reference import end_of_sequence_token_ids
from tests.support.tolerances import (
    assert_float64_model,
    first_token_log_probabilities,
    model_kl_tolerance,
)

MODEL_FIXTURES = ["tiny_llama_path", "tiny_qwen2_path", "smollm2_path"]
KL_TOKENS = 5


@pytest.fixture(scope="module", params=MODEL_FIXTURES)
def model(request: pytest.FixtureRequest) -> Model:
    """heretic's model for each test model in float64, with the adapters reset after every use."""
    model = heretic_model(
        request.getfixturevalue(request.param), batch_size=3, dtypes=["float64"]
    )
    assert_float64_model(model)
    return model


def tolerance(
    model: Model, kl: float, kl_tokens: int = KL_TOKENS, float32_logits: bool = False
) -> float:
    """How far two float64 computations of the mean KL `kl` of `model` may differ."""
    return model_kl_tolerance(model, prompts(), kl_tokens, kl, float32_logits)


@pytest.fixture(autouse=True)
def original_model(model: Model) -> None:
    """Every test starts from the original model."""
    model.reset_model()


def build_engine(
    model: Model, kl_tokens: int = KL_TOKENS, batch_size: int = 3
) -> TeacherForcedKLEngine:
    """A new engine whose reference was built from `model` as it is now."""
    engine = TeacherForcedKLEngine(
        kl_tokens=kl_tokens, batch_size=batch_size, log=lambda _: None
    )
    engine.build_reference(model, prompts())
    return engine


#: The engines built from each test model while it was the original, by the
#: number of tokens, the batch size and the torch thread count they were built
#: with. A reference depends on nothing else, and scoring leaves an engine as it
#: was, so the tests of one model share them instead of generating the same
#: reference again (most of this module's time on SmolLM2).
SHARED_ENGINES: weakref.WeakKeyDictionary[
    Model, dict[tuple[int, int, int], TeacherForcedKLEngine]
] = weakref.WeakKeyDictionary()


def engine_for(
    model: Model, kl_tokens: int = KL_TOKENS, batch_size: int = 3
) -> TeacherForcedKLEngine:
    """
    An engine whose reference was built from the original `model` (every test
    starts from it, `original_model`), shared by the tests of that model.
    """
    engines = SHARED_ENGINES.setdefault(model, {})
    key = (kl_tokens, batch_size, torch.get_num_threads())
    if key not in engines:
        engines[key] = build_engine(model, kl_tokens, batch_size)
    return engines[key]


def formatted_prompt_ids(model: Model, user: str) -> torch.Tensor:
    """One prompt's token ids, formatted independently of the engine, without padding."""
    prompt = prompts([user])[0]
    text = model.tokenizer.apply_chat_template(
        [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    return model.tokenizer(text, return_tensors="pt", return_token_type_ids=False)[
        "input_ids"
    ]


def independent_kl(model: Model, kl_tokens: int) -> tuple[float, list[list[int]]]:
    """
    KL(original || current), computed one prompt at a time, unbatched, in float64,
    with a greedy loop of its own: returns the mean over counted positions and
    the greedy continuations.
    """
    double_model = copy.deepcopy(model.model).double()
    end_ids = set(end_of_sequence_token_ids(model).tolist())
    total = 0.0
    count = 0
    continuations: list[list[int]] = []
    with torch.no_grad():
        for prompt in prompts():
            ids = formatted_prompt_ids(model, prompt.user)
            continuation: list[int] = []
            with double_model.disable_adapter():
                sequence = ids
                for _ in range(kl_tokens):
                    next_token = int(
                        double_model(input_ids=sequence).logits[0, -1].argmax()
                    )
                    continuation.append(next_token)
                    sequence = torch.cat(
                        [sequence, torch.tensor([[next_token]])], dim=1
                    )
                    if next_token in end_ids:
                        break
            continuations.append(continuation)
            full = torch.cat(
                [ids, torch.tensor([continuation[:-1]], dtype=ids.dtype)], dim=1
            )
            scored = len(continuation)
            with double_model.disable_adapter():
                original = F.log_softmax(
                    double_model(input_ids=full).logits[0, -scored:], dim=-1
                )
            current = F.log_softmax(
                double_model(input_ids=full).logits[0, -scored:], dim=-1
            )
            kl = (original.exp() * (original - current)).sum(dim=-1)
            total += float(kl.sum())
            count += scored
    return total / count, continuations


def test_teacher_forced_argmax_reproduces_greedy_continuation(model: Model) -> None:
    engine = engine_for(model)
    measurement = engine.measure(model.model, details=True)
    assert measurement.top1_agreement is not None
    # At every counted position, the teacher-forced argmax is the generated token.
    assert bool(measurement.top1_agreement[measurement.counted].all())

    # The reference equals each prompt's own greedy continuation, generated alone.
    for row, prompt in enumerate(prompts()):
        _, output = model.generate([prompt], max_new_tokens=KL_TOKENS)
        alone = output[0, -KL_TOKENS:] if output.shape[1] else output[0]
        counted = int(measurement.counted[row].sum())
        assert measurement.targets[row, :counted].tolist() == alone[:counted].tolist()


def test_unmodified_model_scores_zero(model: Model) -> None:
    engine = engine_for(model)
    assert abs(engine.score(model.model)) <= tolerance(model, 0.0)


def test_damaged_score_matches_independent_float64_computation(model: Model) -> None:
    engine = engine_for(model)
    damage(model, strength=0.05)
    value = engine.score(model.model)
    expected, continuations = independent_kl(model, KL_TOKENS)
    for row, continuation in enumerate(continuations):
        assert (
            engine.measure(model.model).targets[row, : len(continuation)].tolist()
            == continuation
        )
    assert value > 0
    assert abs(value - expected) <= tolerance(model, expected)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Runs a test with torch set to one thread, then to two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(previous)


@pytest.mark.parametrize("batch_size", [1, 3, len(prompts())])
def test_score_is_independent_of_batch_size(
    model: Model, batch_size: int, threads: int
) -> None:
    reference_engine = engine_for(model, batch_size=len(prompts()))
    engine = engine_for(model, batch_size=batch_size)
    damage(model, strength=0.05)
    expected = reference_engine.score(model.model)
    assert expected > 0
    assert abs(engine.score(model.model) - expected) <= tolerance(model, expected)


def test_score_grows_with_damage_strength(model: Model) -> None:
    engine = engine_for(model)
    scores = []
    for strength in (0.01, 0.03, 0.1):
        damage(model, strength=strength)
        scores.append(engine.score(model.model))
    assert 0 < scores[0] < scores[1] < scores[2]


def test_single_token_equals_heretic_first_token_kl(model: Model) -> None:
    engine = engine_for(model, kl_tokens=1)
    original = first_token_log_probabilities(model, prompts())
    damage(model, strength=0.05)
    current = first_token_log_probabilities(model, prompts())
    # heretic's own KL divergence scorer and 1.4.0's evaluator: batchmean over prompts.
    first_token_kl = F.kl_div(
        current, original, reduction="batchmean", log_target=True
    ).item()
    assert first_token_kl > 0
    assert abs(engine.score(model.model) - first_token_kl) <= tolerance(
        model, first_token_kl, kl_tokens=1, float32_logits=True
    )


def test_first_position_of_longer_reference_is_first_token_kl(model: Model) -> None:
    single = engine_for(model, kl_tokens=1)
    multiple = engine_for(model)
    damage(model, strength=0.05)
    expected = single.score(model.model)
    assert abs(multiple.measure(model.model).first_token_mean - expected) <= (
        tolerance(model, expected)
    )


def test_reference_ending_early_is_masked_after_end_of_sequence(
    tiny_llama_path: Path,
) -> None:
    model = heretic_model(tiny_llama_path, batch_size=3, dtypes=["float64"])
    # Fresh engines: the second is built after the end-of-sequence change.
    probe = build_engine(model)
    # Declare the second reference token of the first prompt an end-of-sequence
    # token: that prompt's reference now ends after two tokens.
    end_token = int(probe.measure(model.model).targets[0, 1])
    generation_config = model.model.generation_config
    generation_config.eos_token_id = [generation_config.eos_token_id, end_token]

    engine = build_engine(model)
    measurement = engine.measure(model.model)
    assert measurement.counted[0].tolist() == [True, True, False, False, False]
    assert measurement.targets[0, 1] == end_token

    damage(model, strength=0.05)
    measurement = engine.measure(model.model)
    expected, continuations = independent_kl(model, KL_TOKENS)
    assert len(continuations[0]) == 2
    assert abs(measurement.mean - expected) <= tolerance(model, expected)
    # Masked positions contribute nothing, whatever the model predicts there.
    assert float(measurement.kl[0, 2:].abs().sum()) == 0.0
