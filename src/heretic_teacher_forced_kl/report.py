# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The statistics of a model comparison, computed from one `KLMeasurement`.

This is the report that llama.cpp's KL-divergence mode gives quantizers,
teacher-forced on the original model's own greedy answers: the mean KL
divergence with its standard error, its distribution over positions, its
course along the continuation, the top-1 agreement, the change in the
likelihood of the reference continuation, and the KL divergence split by how
confident the original model was in its own token, and the prompts that
diverge most. Everything here is pure computation on tensors;
`cli/compare/render.py` shows it on the console.

Standard errors are taken over prompts: each prompt's mean over its counted
positions is one sample, since the positions within one continuation are
strongly correlated, while prompts are independent.

A candidate whose logits are NaN or infinite has a KL divergence of +inf at
those positions (`metric/divergence.py`); the statistics that need its
probabilities are NaN there, and `non_finite_positions` counts them.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .metric.measurement import KLMeasurement, masked_means

#: The edges of the buckets of the original model's probability of its own token:
#: [0, 0.5), [0.5, 0.8), [0.8, 0.95) and [0.95, 1] (the last bucket includes 1).
CONFIDENCE_BUCKET_EDGES: tuple[float, ...] = (0.0, 0.5, 0.8, 0.95, 1.0)

#: How many of the prompts that diverge most the report lists.
MOST_DIVERGENT_PROMPTS = 5


@dataclass(frozen=True)
class PositionStatistics:
    """The KL divergence at one position (1-based) of the reference continuation."""

    position: int
    counted: int
    mean_kl: float
    mean_kl_standard_error: float
    first_quartile_kl: float
    median_kl: float
    third_quartile_kl: float
    top1_agreement: float


@dataclass(frozen=True)
class ConfidenceBucket:
    """
    The positions whose reference token the original model gave a probability in
    [lower, upper) ([lower, upper] for the last bucket).
    """

    lower: float
    upper: float
    includes_upper: bool
    count: int
    share: float
    mean_kl: float
    top1_agreement: float

    @property
    def label(self) -> str:
        """The bucket's interval, as "[0.5, 0.8)"."""
        closing = "]" if self.includes_upper else ")"
        return f"[{self.lower:g}, {self.upper:g}{closing}"


@dataclass(frozen=True)
class ComparisonReport:
    """
    Every number of a comparison report.

    `mean_kl` is the mean over all counted positions of all prompts: exactly
    the teacher-forced KL scorer's value. The `*_standard_error` fields are
    standard errors of the mean of per-prompt means (NaN with a single prompt).
    Log-likelihood changes are in nats: `negative_log_likelihood_change` is
    the mean of -log p_candidate(reference token) + log p_original(reference
    token), the natural logarithm of `perplexity_ratio`.

    `non_finite_positions` counts the counted positions where the candidate's
    logits were NaN or infinite, `infinite_kl_positions` those whose KL
    divergence is +inf for any reason (these, and positions where the
    candidate gives probability 0 to a token the original can produce).

    The `prompt_*` lists hold one entry per prompt, in the order of the
    prompts: the mean KL, the counted tokens, the KL divergence at each counted
    position, the (1-based) first counted position where the candidate's most
    likely token is not the reference token (None where it never differs), and
    the positions with non-finite logits. `most_divergent_prompts` holds the
    (0-based) indices of the prompts with the highest mean KL, highest first:
    at most `MOST_DIVERGENT_PROMPTS`, and only prompts whose mean KL is above 0.
    """

    prompt_count: int
    kl_tokens: int
    counted_tokens: int
    mean_kl: float
    mean_kl_standard_error: float
    median_kl: float
    percentile_90_kl: float
    percentile_99_kl: float
    maximum_kl: float
    first_token_kl: float
    top1_agreement: float
    top1_agreement_standard_error: float
    mean_probability_change: float
    mean_probability_change_standard_error: float
    negative_log_likelihood_change: float
    negative_log_likelihood_change_standard_error: float
    perplexity_ratio: float
    original_perplexity: float
    candidate_perplexity: float
    positions: list[PositionStatistics]
    confidence_buckets: list[ConfidenceBucket]
    prompt_mean_kl: list[float]
    prompt_counted_tokens: list[int]
    non_finite_positions: int
    infinite_kl_positions: int
    prompt_kl_by_position: list[list[float]]
    prompt_first_top1_difference: list[int | None]
    prompt_non_finite_positions: list[int]
    most_divergent_prompts: list[int]


def percentile(sorted_values: Tensor, fraction: float) -> float:
    """
    The `fraction` quantile of ascending `sorted_values`, interpolated linearly
    between neighbours (NumPy's default method); NaN when there are no values.
    """
    count = int(sorted_values.numel())
    if count == 0:
        return math.nan
    rank = fraction * (count - 1)
    lower = math.floor(rank)
    upper = min(lower + 1, count - 1)
    weight = rank - lower
    lower_value = float(sorted_values[lower])
    if weight == 0:
        # Exactly on a value: no interpolation, so that an infinite neighbour
        # (weighted by 0) cannot turn the result into NaN.
        return lower_value
    upper_value = float(sorted_values[upper])
    if math.isinf(upper_value):
        return upper_value
    return lower_value * (1 - weight) + upper_value * weight


def exponential(value: float) -> float:
    """`math.exp(value)`, +inf where it overflows (a candidate far from the reference)."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def per_prompt_means(values: Tensor, counted: Tensor) -> Tensor:
    """The mean of `values` over each prompt's counted positions (NaN where none counts)."""
    return masked_means(values, counted, dimension=1)


def standard_error_of_mean(samples: Tensor) -> float:
    """The standard error of the mean of `samples` (NaN with fewer than two)."""
    samples = samples[~torch.isnan(samples)]
    count = int(samples.numel())
    if count < 2:
        return math.nan
    return float(samples.std(correction=1) / math.sqrt(count))


def pooled_mean(values: Tensor, counted: Tensor) -> float:
    """The mean of `values` over all counted positions of all prompts."""
    count = int(counted.sum())
    if count == 0:
        return math.nan
    return float(values.double()[counted].sum() / count)


def mean_over_prompts(values: Tensor, counted: Tensor) -> tuple[float, float]:
    """
    The mean of `values` over all counted positions, and its standard error
    taken over prompts (from the spread of the per-prompt means). A mean that is
    undefined (a counted value is NaN) has an undefined standard error too, not
    the spread of the prompts where it is defined.
    """
    mean = pooled_mean(values, counted)
    if math.isnan(mean):
        return mean, math.nan
    return mean, standard_error_of_mean(per_prompt_means(values, counted))


def position_statistics(
    kl: Tensor, counted: Tensor, agreement: Tensor, position_means: list[float]
) -> list[PositionStatistics]:
    """The statistics of every position 1 .. kl_tokens."""
    statistics = []
    for index, mean in enumerate(position_means):
        mask = counted[:, index]
        values = kl[:, index][mask].double().sort().values
        count = int(mask.sum())
        statistics.append(
            PositionStatistics(
                position=index + 1,
                counted=count,
                mean_kl=mean,
                mean_kl_standard_error=standard_error_of_mean(values),
                first_quartile_kl=percentile(values, 0.25),
                median_kl=percentile(values, 0.5),
                third_quartile_kl=percentile(values, 0.75),
                top1_agreement=(
                    float(agreement[:, index][mask].double().mean())
                    if count
                    else math.nan
                ),
            )
        )
    return statistics


def confidence_buckets(
    kl: Tensor,
    counted: Tensor,
    agreement: Tensor,
    original_probabilities: Tensor,
    edges: tuple[float, ...] = CONFIDENCE_BUCKET_EDGES,
) -> list[ConfidenceBucket]:
    """
    The counted positions split by the original model's probability of its own
    (reference) token, with each bucket's count, share and mean KL divergence.
    """
    if len(edges) < 2 or any(lower >= upper for lower, upper in zip(edges, edges[1:])):
        raise ValueError(f"Confidence bucket edges must increase, got {edges!r}.")
    total = int(counted.sum())
    probabilities = original_probabilities.double().clamp(0.0, 1.0)
    buckets = []
    for index, (lower, upper) in enumerate(zip(edges, edges[1:])):
        includes_upper = index == len(edges) - 2
        in_range = probabilities >= lower
        in_range &= probabilities <= upper if includes_upper else probabilities < upper
        mask = in_range & counted
        count = int(mask.sum())
        buckets.append(
            ConfidenceBucket(
                lower=lower,
                upper=upper,
                includes_upper=includes_upper,
                count=count,
                share=count / total if total else math.nan,
                mean_kl=float(kl[mask].double().mean()) if count else math.nan,
                top1_agreement=float(agreement[mask].double().mean())
                if count
                else math.nan,
            )
        )
    return buckets


def first_top1_differences(agreement: Tensor, counted: Tensor) -> list[int | None]:
    """
    For each prompt, the 1-based first counted position where the candidate's most
    likely token is not the reference token; None where it never differs.
    """
    differs = ~agreement.bool() & counted
    positions = torch.arange(1, differs.shape[1] + 1).expand_as(differs)
    first = torch.where(differs, positions, differs.shape[1] + 1).amin(dim=1)
    return [
        int(position) if position <= differs.shape[1] else None
        for position in first.tolist()
    ]


def kl_by_position(kl: Tensor, counted: Tensor) -> list[list[float]]:
    """Each prompt's KL divergence at its counted positions, in order."""
    return [[float(value) for value in row[mask]] for row, mask in zip(kl, counted)]


def most_divergent(prompt_means: list[float], count: int) -> list[int]:
    """
    The indices of the `count` prompts with the highest mean KL divergence (+inf
    first), highest first, the earlier prompt first among equals; prompts whose
    mean is 0 or undefined are left out.
    """
    ranked = sorted(
        (
            index
            for index, mean in enumerate(prompt_means)
            if not math.isnan(mean) and mean > 0
        ),
        key=lambda index: (-prompt_means[index], index),
    )
    return ranked[:count]


def build_report(
    measurement: KLMeasurement,
    bucket_edges: tuple[float, ...] = CONFIDENCE_BUCKET_EDGES,
    most_divergent_count: int = MOST_DIVERGENT_PROMPTS,
) -> ComparisonReport:
    """
    Computes the comparison report of a measurement taken with `details=True`
    (and equal position weights, as `heretic-kl compare` uses).
    """
    current = measurement.current_target_log_probabilities
    reference = measurement.reference_target_log_probabilities
    agreement = measurement.top1_agreement
    if current is None or reference is None or agreement is None:
        raise ValueError(
            "build_report needs a measurement taken with measure(..., details=True)."
        )

    kl = measurement.kl.double()
    counted = measurement.counted.bool()
    sorted_kl = kl[counted].sort().values
    agreement_values = agreement.double()
    log_likelihood_change = reference.double() - current.double()
    probability_change = current.double().exp() - reference.double().exp()

    top1, top1_error = mean_over_prompts(agreement_values, counted)
    probability_mean, probability_error = mean_over_prompts(probability_change, counted)
    nll_change, nll_change_error = mean_over_prompts(log_likelihood_change, counted)
    prompt_means = per_prompt_means(kl, counted)
    prompt_mean_kl = [float(value) for value in prompt_means]
    non_finite = (
        measurement.non_finite.bool() & counted
        if measurement.non_finite is not None
        else torch.zeros_like(counted)
    )

    return ComparisonReport(
        prompt_count=int(kl.shape[0]),
        kl_tokens=int(kl.shape[1]),
        counted_tokens=int(counted.sum()),
        mean_kl=measurement.mean,
        mean_kl_standard_error=standard_error_of_mean(prompt_means),
        median_kl=percentile(sorted_kl, 0.5),
        percentile_90_kl=percentile(sorted_kl, 0.9),
        percentile_99_kl=percentile(sorted_kl, 0.99),
        maximum_kl=float(sorted_kl[-1]) if sorted_kl.numel() else math.nan,
        first_token_kl=measurement.first_token_mean,
        top1_agreement=top1,
        top1_agreement_standard_error=top1_error,
        mean_probability_change=probability_mean,
        mean_probability_change_standard_error=probability_error,
        negative_log_likelihood_change=nll_change,
        negative_log_likelihood_change_standard_error=nll_change_error,
        perplexity_ratio=exponential(nll_change),
        original_perplexity=exponential(-pooled_mean(reference, counted)),
        candidate_perplexity=exponential(-pooled_mean(current, counted)),
        positions=position_statistics(
            kl, counted, agreement_values, measurement.position_means
        ),
        confidence_buckets=confidence_buckets(
            kl, counted, agreement_values, reference.double().exp(), bucket_edges
        ),
        prompt_mean_kl=prompt_mean_kl,
        prompt_counted_tokens=[int(value) for value in counted.sum(dim=1)],
        non_finite_positions=int(non_finite.sum()),
        infinite_kl_positions=int((torch.isinf(kl) & counted).sum()),
        prompt_kl_by_position=kl_by_position(kl, counted),
        prompt_first_top1_difference=first_top1_differences(agreement, counted),
        prompt_non_finite_positions=[int(value) for value in non_finite.sum(dim=1)],
        most_divergent_prompts=most_divergent(prompt_mean_kl, most_divergent_count),
    )
