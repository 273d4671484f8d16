# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The statistics of a model comparison, computed from one `KLMeasurement`.

This is the report that llama.cpp's KL-divergence mode gives quantizers,
teacher-forced on the original model's own greedy answers: the mean KL
divergence with its standard error, its distribution over positions, its
course along the continuation, the top-1 agreement, the change in the
likelihood of the reference continuation, and the KL divergence split by how
confident the original model was in its own token. Everything here is pure
computation on tensors; `cli/compare/render.py` shows it on the console.

Standard errors are taken over prompts: each prompt's mean over its counted
positions is one sample, since the positions within one continuation are
strongly correlated, while prompts are independent.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .metric.measurement import KLMeasurement, masked_means

#: The edges of the buckets of the original model's probability of its own token:
#: [0, 0.5), [0.5, 0.8), [0.8, 0.95) and [0.95, 1] (the last bucket includes 1).
CONFIDENCE_BUCKET_EDGES: tuple[float, ...] = (0.0, 0.5, 0.8, 0.95, 1.0)


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
    return float(sorted_values[lower] * (1 - weight) + sorted_values[upper] * weight)


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
    taken over prompts (from the spread of the per-prompt means).
    """
    return pooled_mean(values, counted), standard_error_of_mean(
        per_prompt_means(values, counted)
    )


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


def build_report(
    measurement: KLMeasurement,
    bucket_edges: tuple[float, ...] = CONFIDENCE_BUCKET_EDGES,
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
        perplexity_ratio=math.exp(nll_change),
        original_perplexity=math.exp(-pooled_mean(reference, counted)),
        candidate_perplexity=math.exp(-pooled_mean(current, counted)),
        positions=position_statistics(
            kl, counted, agreement_values, measurement.position_means
        ),
        confidence_buckets=confidence_buckets(
            kl, counted, agreement_values, reference.double().exp(), bucket_edges
        ),
        prompt_mean_kl=[float(value) for value in prompt_means],
        prompt_counted_tokens=[int(value) for value in counted.sum(dim=1)],
    )
