# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Non-finite numbers: an original model whose logits hold NaN, a candidate whose
logits are NaN or infinite, tokens of probability 0, and how each is shown.

The mathematics runs on hand-made tensors; the engine on tiny random models
through heretic-llm's own `Model`, with forward hooks that write NaN or
infinities into the logits, and with a model whose embedding of one token is
NaN, so that exactly the prompts holding that token are broken.
"""

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from heretic.model import Model
from transformers import AutoModelForCausalLM, AutoTokenizer

from development.damage import damage
from development.heretic_host import heretic_model, prompts
from heretic_teacher_forced_kl import TeacherForcedKLEngine
from heretic_teacher_forced_kl.adapters.display import (
    format_position_means,
    markdown_display,
    rich_display,
)
from heretic_teacher_forced_kl.adapters.legacy.evaluator import kl_objective
from heretic_teacher_forced_kl.errors import UnusableModelError
from heretic_teacher_forced_kl.metric.divergence import (
    batch_divergence,
    has_zero_probabilities,
    kl_divergence_per_position,
    log_probabilities,
)
from heretic_teacher_forced_kl.metric.measurement import (
    KLMeasurement,
    masked_position_means,
    masked_weighted_mean,
)
from heretic_teacher_forced_kl.report import build_report, percentile
from tests.test_launcher import run_launcher, write_study_config

INFINITY = math.inf
NAN = math.nan
KL_TOKENS = 3

#: The prompts of the engine tests; only the second holds the word "zebra".
ENGINE_PROMPTS = [
    "Hi",
    "Tell me about the zebra.",
    "What is the capital of France?",
    "List three colors.",
]
POISONED_PROMPT = 1


def definition(reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """KL(reference || current) straight from its definition, in float64: sum over p > 0."""
    p = reference.double().exp()
    terms = p * (reference.double() - current.double())
    return torch.where(p > 0, terms, 0.0).sum(dim=-1)


# The mathematics.


def test_tokens_of_probability_zero_contribute_nothing() -> None:
    generator = torch.Generator().manual_seed(0)
    reference_logits = torch.randn(2, 3, 50, generator=generator)
    current_logits = torch.randn(2, 3, 50, generator=generator)
    # The original rules out token 7 everywhere and token 9 at one position; the
    # candidate rules out token 7 as well, and token 11 (which the original allows
    # nowhere else) where the original rules it out too.
    reference_logits[..., 7] = -INFINITY
    reference_logits[1, 2, 9] = -INFINITY
    current_logits[..., 7] = -INFINITY
    reference_logits[0, 1, 11] = -INFINITY
    current_logits[0, 1, 11] = -INFINITY
    reference = log_probabilities(reference_logits)
    current = log_probabilities(current_logits)

    exact = kl_divergence_per_position(reference, current)
    assert bool(torch.isfinite(exact).all())
    assert torch.allclose(exact.double(), definition(reference, current), atol=1e-6)
    # Identical distributions with impossible tokens still diverge by exactly 0.
    assert float(kl_divergence_per_position(reference, reference).abs().max()) == 0.0

    assert has_zero_probabilities(reference)
    for chunk_bytes in (4 * 50 * 4, 2**20):
        chunked = batch_divergence(current_logits, reference, chunk_bytes=chunk_bytes)
        assert torch.equal(chunked.kl, exact)
        assert not bool(chunked.non_finite.any())


def test_a_candidate_that_rules_out_a_possible_token_diverges_infinitely() -> None:
    generator = torch.Generator().manual_seed(1)
    reference = log_probabilities(torch.randn(1, 2, 20, generator=generator))
    current_logits = torch.randn(1, 2, 20, generator=generator)
    current_logits[0, 1, 4] = -INFINITY
    exact = kl_divergence_per_position(reference, log_probabilities(current_logits))
    assert math.isfinite(float(exact[0, 0]))
    assert float(exact[0, 1]) == INFINITY
    chunked = batch_divergence(current_logits, reference)
    assert torch.equal(chunked.kl, exact)
    # A legitimate +inf: the candidate's distribution is defined.
    assert not bool(chunked.non_finite.any())


@pytest.mark.parametrize("bad_logit", [NAN, INFINITY])
@pytest.mark.parametrize("reference_rules_out_tokens", [False, True])
def test_non_finite_candidate_logits_score_infinity_in_both_functions(
    bad_logit: float, reference_rules_out_tokens: bool
) -> None:
    generator = torch.Generator().manual_seed(2)
    reference_logits = torch.randn(3, 2, 40, generator=generator)
    if reference_rules_out_tokens:
        reference_logits[..., 3] = -INFINITY
    reference = log_probabilities(reference_logits)
    logits = torch.randn(3, 2, 40, generator=generator)
    logits[1, 0, 5] = bad_logit
    logits[2, 1, 3] = bad_logit
    targets = torch.zeros(3, 2, dtype=torch.long)

    exact = kl_divergence_per_position(reference, log_probabilities(logits))
    chunked = batch_divergence(
        logits, reference, targets, chunk_bytes=2 * 40 * 4
    )  # Two rows per chunk.
    undefined = torch.tensor([[False, False], [True, False], [False, True]])
    assert torch.equal(chunked.non_finite, undefined)
    assert torch.equal(exact, chunked.kl)
    assert bool((exact[undefined] == INFINITY).all())
    assert bool(torch.isfinite(exact[~undefined]).all())
    assert not bool(torch.isnan(exact).any())
    # An undefined distribution has no most likely token that agrees.
    assert chunked.top1_agreement is not None
    assert not bool(chunked.top1_agreement[undefined].any())


def test_the_engine_knows_whether_the_reference_rules_out_tokens() -> None:
    generator = torch.Generator().manual_seed(3)
    reference_logits = torch.randn(2, 2, 30, generator=generator)
    reference_logits[0, 0, 0] = -INFINITY
    reference = log_probabilities(reference_logits)
    logits = torch.randn(2, 2, 30, generator=generator)
    # Told that there is no such token, the fast path keeps 0 * inf = NaN out of
    # the result anyway: a row that is NaN scores +inf, never NaN.
    told = batch_divergence(logits, reference, reference_has_zero_probabilities=False)
    assert not bool(torch.isnan(told.kl).any())
    asked = batch_divergence(logits, reference)
    assert torch.equal(
        asked.kl, kl_divergence_per_position(reference, log_probabilities(logits))
    )
    assert not has_zero_probabilities(log_probabilities(logits))


def test_means_are_infinite_never_nan() -> None:
    values = torch.tensor([[0.1, INFINITY], [0.3, INFINITY]])
    counted = torch.tensor([[True, True], [True, False]])
    weights = torch.ones(2, dtype=torch.float64)
    assert masked_weighted_mean(values, counted, weights) == INFINITY
    assert masked_position_means(values, counted) == [pytest.approx(0.2), INFINITY]
    # An infinite value at a position that does not count is left out.
    assert masked_weighted_mean(
        values, torch.tensor([[True, False], [True, False]]), weights
    ) == pytest.approx(0.2)


# The objective and the display.


def test_heretic_objective_sees_infinite_damage() -> None:
    # heretic-llm 1.4.0's objective: NaN >= target is false, so a NaN score would
    # have looked undamaged; +inf is the worst.
    assert kl_objective(INFINITY, 0.0, 1.0, 0.01) == INFINITY


def measurement_with(
    kl: list[list[float]],
    counted: list[list[bool]],
    non_finite: list[list[bool]] | None = None,
) -> KLMeasurement:
    """A measurement of hand-made values."""
    kl_tensor = torch.tensor(kl)
    return KLMeasurement(
        kl=kl_tensor,
        counted=torch.tensor(counted),
        weights=torch.ones(kl_tensor.shape[1], dtype=torch.float64),
        targets=torch.zeros(kl_tensor.shape, dtype=torch.long),
        non_finite=torch.tensor(non_finite) if non_finite is not None else None,
    )


def test_not_counted_and_undefined_positions_look_different() -> None:
    assert (
        format_position_means([0.1, NAN, INFINITY, NAN], [2, 1, 1, 0])
        == "0.1 · NaN · inf · -"
    )
    measurement = measurement_with([[0.1, 0.2, 0.0]], [[True, True, False]])
    assert "(first token 0.1, then 0.2 · -)" in rich_display(measurement)


def test_trial_line_says_why_the_divergence_is_infinite() -> None:
    broken = measurement_with(
        [[0.1, INFINITY], [INFINITY, 0.0]],
        [[True, True], [True, False]],
        [[False, True], [True, False]],
    )
    line = rich_display(broken)
    assert line.startswith("inf ")
    assert "first token inf, then inf" in line
    assert "logits are NaN or infinite at 2 of 3 positions" in line
    assert "logits are NaN or infinite at 2 of 3 positions" in markdown_display(broken)

    ruled_out = measurement_with([[0.1, INFINITY]], [[True, True]], [[False, False]])
    assert "gives probability 0 to a token that the original can produce at 1 of 2" in (
        rich_display(ruled_out)
    )
    healthy = measurement_with([[0.1, 0.2]], [[True, True]], [[False, False]])
    assert "[red]" not in rich_display(healthy)


# The report.


def test_percentile_next_to_infinity_is_not_nan() -> None:
    values = torch.tensor([0.1, 0.2, INFINITY])
    assert percentile(values, 0.5) == pytest.approx(0.2)
    assert percentile(values, 1.0) == INFINITY
    assert percentile(values, 0.75) == INFINITY
    assert percentile(torch.tensor([INFINITY, INFINITY]), 0.0) == INFINITY


def test_report_of_a_candidate_with_non_finite_logits() -> None:
    measurement = measurement_with(
        [[0.1, INFINITY, 0.3], [0.2, 0.4, 0.0]],
        [[True, True, True], [True, True, False]],
        [[False, True, False], [False, False, False]],
    )
    measurement.reference_target_log_probabilities = torch.log(
        torch.tensor([[0.9, 0.5, 0.7], [0.8, 0.6, 0.5]])
    )
    measurement.current_target_log_probabilities = torch.log(
        torch.tensor([[0.8, NAN, 0.7], [0.8, 1e-300, 0.5]])
    )
    measurement.top1_agreement = torch.tensor([[True, False, True], [True, True, True]])
    report = build_report(measurement)
    assert report.mean_kl == INFINITY
    assert report.maximum_kl == INFINITY
    assert report.median_kl == pytest.approx(0.3)
    assert report.non_finite_positions == 1
    assert report.infinite_kl_positions == 1
    assert report.prompt_non_finite_positions == [1, 0]
    assert report.prompt_mean_kl[0] == INFINITY
    assert report.positions[1].mean_kl == INFINITY
    # The candidate's probability of the reference token is undefined at one position.
    assert math.isnan(report.negative_log_likelihood_change)
    assert report.most_divergent_prompts == [0, 1]


def test_undefined_mean_has_an_undefined_standard_error() -> None:
    # Two prompts are unchanged and one holds NaN logits: the mean change in the
    # reference token's probability is undefined, and so is its standard error
    # (not the 0.0 of the two defined prompts alone).
    measurement = measurement_with(
        [[0.0, INFINITY], [0.0, 0.0], [0.0, 0.0]],
        [[True, True], [True, True], [True, True]],
        [[False, True], [False, False], [False, False]],
    )
    reference = torch.log(torch.tensor([[0.9, 0.5], [0.8, 0.6], [0.8, 0.6]]))
    measurement.reference_target_log_probabilities = reference
    current = reference.clone()
    current[0, 1] = NAN
    measurement.current_target_log_probabilities = current
    measurement.top1_agreement = torch.tensor(
        [[True, False], [True, True], [True, True]]
    )
    report = build_report(measurement)
    for mean, standard_error in [
        (report.mean_probability_change, report.mean_probability_change_standard_error),
        (
            report.negative_log_likelihood_change,
            report.negative_log_likelihood_change_standard_error,
        ),
    ]:
        assert math.isnan(mean)
        assert math.isnan(standard_error)
    # The agreement is defined everywhere (NaN logits agree with no token).
    assert report.top1_agreement == pytest.approx(5 / 6)
    assert report.top1_agreement_standard_error > 0


def test_perplexity_of_a_candidate_far_from_the_reference_does_not_overflow() -> None:
    measurement = measurement_with([[5.0, 6.0]], [[True, True]], [[False, False]])
    measurement.reference_target_log_probabilities = torch.tensor([[-0.1, -0.1]])
    measurement.current_target_log_probabilities = torch.tensor([[-2000.0, -3000.0]])
    measurement.top1_agreement = torch.tensor([[False, False]])
    report = build_report(measurement)
    assert report.perplexity_ratio == INFINITY
    assert report.candidate_perplexity == INFINITY


# The engine, on heretic's own model.


@contextmanager
def logits_hook(model: Model, change: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """Runs the block with `change` applied in place to every logits tensor of `model`."""

    def hook(module: Any, arguments: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        change(output)
        return output

    handle = model.model.get_output_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def set_column(token: int, value: float) -> Callable[[torch.Tensor], None]:
    """A logits change that sets one token's logit everywhere."""

    def change(logits: torch.Tensor) -> None:
        logits[..., token] = value

    return change


def unique_token(model: Model, users: list[str], index: int) -> int:
    """A token id that the formatted prompt `index` holds and no other does."""

    def ids(user: str) -> set[int]:
        prompt = prompts([user])[0]
        text = model.tokenizer.apply_chat_template(
            [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            add_generation_prompt=True,
            tokenize=False,
        )
        return set(model.tokenizer(text)["input_ids"])

    others = set().union(*(ids(user) for i, user in enumerate(users) if i != index))
    return min(ids(users[index]) - others)


def save_with_nan_embedding(source: Path, directory: Path, token: int) -> Path:
    """Saves a copy of `source` whose input embedding of `token` is NaN."""
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    with torch.no_grad():
        model.get_input_embeddings().weight[token] = NAN
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(source).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_path: Path) -> Model:
    """heretic's model of the tiny Llama."""
    return heretic_model(tiny_llama_path, batch_size=3)


@pytest.fixture(autouse=True)
def reset(request: pytest.FixtureRequest) -> None:
    """Every test that uses the tiny model starts from the original."""
    if "tiny_model" in request.fixturenames:
        request.getfixturevalue("tiny_model").reset_model()


def engine() -> TeacherForcedKLEngine:
    """An engine that logs nothing, with batches of 3 prompts."""
    return TeacherForcedKLEngine(kl_tokens=KL_TOKENS, batch_size=3, log=lambda _: None)


def test_original_with_nan_logits_on_one_prompt_stops_the_reference(
    tiny_llama_path: Path, tmp_path: Path
) -> None:
    model = heretic_model(tiny_llama_path, batch_size=3)
    token = unique_token(model, ENGINE_PROMPTS, POISONED_PROMPT)
    broken = heretic_model(
        save_with_nan_embedding(tiny_llama_path, tmp_path / "broken", token),
        batch_size=3,
    )
    scorer = engine()
    with pytest.raises(UnusableModelError) as error:
        scorer.build_reference(broken, prompts(ENGINE_PROMPTS))
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert "\n" not in message
    assert message.startswith(
        "The original model's logits are NaN or infinite at 1 of 4 KL prompts, "
        "first at prompt 2 ('Tell me about the zebra.'), reference token 1;"
    )
    assert not scorer.has_reference

    # The same model without the broken prompt is a fine reference.
    healthy = [user for index, user in enumerate(ENGINE_PROMPTS) if index != 1]
    scorer.build_reference(broken, prompts(healthy))
    assert scorer.has_reference


@pytest.mark.parametrize("bad_logit", [NAN, INFINITY])
def test_original_with_non_finite_logits_everywhere_stops_the_reference(
    tiny_model: Model, bad_logit: float
) -> None:
    with logits_hook(tiny_model, set_column(5, bad_logit)):
        with pytest.raises(
            UnusableModelError, match="at 4 of 4 KL prompts, first at prompt 1"
        ):
            engine().build_reference(tiny_model, prompts(ENGINE_PROMPTS))


@pytest.mark.parametrize("bad_logit", [NAN, INFINITY])
def test_candidate_with_non_finite_logits_scores_infinity(
    tiny_model: Model, bad_logit: float
) -> None:
    scorer = engine()
    scorer.build_reference(tiny_model, prompts(ENGINE_PROMPTS))
    damage(tiny_model, strength=0.05)
    healthy = scorer.measure(tiny_model.model)
    assert healthy.non_finite_count == 0
    assert 0 < healthy.mean < INFINITY

    with logits_hook(tiny_model, set_column(5, bad_logit)):
        measurement = scorer.measure(tiny_model.model, details=True)
    assert measurement.mean == INFINITY
    assert scorer.score(tiny_model.model) > 0  # The hook is gone again.
    assert measurement.non_finite_count == int(measurement.counted.sum())
    assert measurement.position_means == [INFINITY] * KL_TOKENS
    assert bool((measurement.kl[~measurement.counted] == 0).all())
    assert "logits are NaN or infinite" in rich_display(measurement)


def test_candidate_with_nan_logits_on_one_prompt(
    tiny_llama_path: Path, tiny_model: Model, tmp_path: Path
) -> None:
    scorer = engine()
    scorer.build_reference(tiny_model, prompts(ENGINE_PROMPTS))
    token = unique_token(tiny_model, ENGINE_PROMPTS, POISONED_PROMPT)
    candidate = AutoModelForCausalLM.from_pretrained(
        save_with_nan_embedding(tiny_llama_path, tmp_path / "broken", token),
        dtype=torch.float32,
    )
    measurement = scorer.measure(candidate)
    assert measurement.mean == INFINITY
    per_prompt = measurement.non_finite.sum(dim=1).tolist()
    assert per_prompt[POISONED_PROMPT] == int(
        measurement.counted[POISONED_PROMPT].sum()
    )
    assert sum(per_prompt) == per_prompt[POISONED_PROMPT]
    assert bool(torch.isfinite(measurement.kl[[0, 2, 3]]).all())


def test_tokens_the_original_rules_out_contribute_nothing(tiny_model: Model) -> None:
    ruled_out = 11
    with logits_hook(tiny_model, set_column(ruled_out, -INFINITY)):
        scorer = engine()
        scorer.build_reference(tiny_model, prompts(ENGINE_PROMPTS))
        assert scorer.reference_has_zero_probabilities
        assert scorer.score(tiny_model.model) == 0.0
        damage(tiny_model, strength=0.05)
        measurement = scorer.measure(tiny_model.model)
    # A logit far below every other gives that token a probability of exactly 0
    # in float32 too, without any infinity: the same KL divergence.
    tiny_model.reset_model()
    with logits_hook(tiny_model, set_column(ruled_out, -1e30)):
        finite = engine()
        finite.build_reference(tiny_model, prompts(ENGINE_PROMPTS))
        assert not finite.reference_has_zero_probabilities
        damage(tiny_model, strength=0.05)
        expected = finite.measure(tiny_model.model)
    assert measurement.non_finite_count == 0
    assert 0 < measurement.mean < INFINITY
    assert torch.equal(measurement.kl, expected.kl)

    # A candidate that rules out a token the original allows diverges infinitely,
    # with a defined distribution.
    with logits_hook(tiny_model, set_column(ruled_out + 1, -INFINITY)):
        infinite = finite.measure(tiny_model.model)
    assert infinite.mean == INFINITY
    assert infinite.non_finite_count == 0
    assert "gives probability 0" in rich_display(infinite)


# `heretic-kl compare`.


def compare(arguments: list[Any]) -> int:
    """Runs `heretic-kl compare` on CPU, quietly, and returns its exit status."""
    from heretic_teacher_forced_kl.cli.main import main

    return main(
        ["compare", *[str(argument) for argument in arguments], "--device", "cpu"]
        + ["--quiet"]
    )


@pytest.fixture
def broken_copy(tiny_llama_path: Path, tiny_model: Model, tmp_path: Path) -> Path:
    """The tiny Llama, broken (NaN logits) on the prompt that holds "zebra"."""
    token = unique_token(tiny_model, ENGINE_PROMPTS, POISONED_PROMPT)
    return save_with_nan_embedding(tiny_llama_path, tmp_path / "broken", token)


def test_compare_stops_at_an_original_with_nan_logits(
    broken_copy: Path,
    tiny_llama_path: Path,
    write_prompt_file: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompt_file = write_prompt_file(ENGINE_PROMPTS)
    json_path = tmp_path / "report.json"
    arguments = [
        "--prompts",
        prompt_file,
        "--kl-tokens",
        KL_TOKENS,
        "--json",
        json_path,
    ]
    assert compare([broken_copy, tiny_llama_path, *arguments]) == 1
    output = capsys.readouterr().out
    assert "Traceback" not in output
    last_line = output.strip().splitlines()[-1]
    assert last_line.startswith(
        "heretic-kl: error: The original model's logits are NaN or infinite at 1 of 4 "
        "KL prompts, first at prompt 2 ('Tell me about the zebra.')"
    )
    assert "Loading CANDIDATE" not in output
    assert not json_path.exists()


def test_compare_reports_a_candidate_with_nan_logits_and_fails(
    broken_copy: Path,
    tiny_llama_path: Path,
    write_prompt_file: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompt_file = write_prompt_file(ENGINE_PROMPTS)
    json_path = tmp_path / "report.json"
    plot_path = tmp_path / "report.png"
    arguments = ["--prompts", prompt_file, "--kl-tokens", KL_TOKENS]
    arguments += ["--json", json_path, "--plot", plot_path]
    assert compare([tiny_llama_path, broken_copy, *arguments]) == 1
    output = capsys.readouterr().out
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    # The whole report stands, and the files are written.
    assert any(
        "Mean KL(original ‖ candidate)" in line and "inf" in line for line in lines
    )
    assert "Prompts that diverge most" in output
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lines[-1].startswith(
        "heretic-kl: error: CANDIDATE's logits are NaN or infinite at "
    )
    assert (
        "in 1 of 4 prompts (first: prompt 2, 'Tell me about the zebra.')" in lines[-1]
    )
    assert lines[-1].endswith("so its KL divergence is +inf, the worst damage.")

    document = json.loads(json_path.read_text(encoding="utf-8"))
    report = document["report"]
    counted = document["prompts"][POISONED_PROMPT]["counted_tokens"]
    assert report["non_finite_positions"] == counted
    assert report["prompt_non_finite_positions"][POISONED_PROMPT] == counted
    # JSON has no infinity: null, with the count above saying why.
    assert report["mean_kl"] is None
    assert report["most_divergent_prompts"][0] == POISONED_PROMPT
    assert document["most_divergent_prompts"][0]["user"] == ENGINE_PROMPTS[1]


# The launcher on heretic-llm 1.4.0.


@pytest.mark.end_to_end
def test_study_on_an_original_with_nan_logits_stops_before_the_first_trial(
    tiny_llama_path: Path, tmp_path: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path, dtype=torch.float32)
    with torch.no_grad():
        # One token's logit is NaN everywhere, so every distribution is undefined.
        model.get_output_embeddings().weight[17] = NAN
    broken = tmp_path / "broken"
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(tiny_llama_path).save_pretrained(broken)
    write_study_config(tmp_path)

    result = run_launcher(
        ["--non-interactive", "--kl-tokens", "3", str(broken)], tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    assert "Running trial" not in output
    assert output.count("error") == 1
    assert (
        result.stdout.strip()
        .splitlines()[-1]
        .startswith(
            "heretic-kl: error: The original model's logits are NaN or infinite at 8 of 8 "
            "KL prompts, first at prompt 1 ("
        )
    )
