# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
How far two computations of the same KL divergence may differ, from the
arithmetic alone.

Why the numeric tests compare in float64. In float32 (unit roundoff
u = 2**-24, about 6e-8) a proven bound is useless here: the log-sum-exp of a
row adds up V = 49,152 terms (SmolLM2), and a sum of V terms in an order that
torch chooses by thread count and shape carries a relative error of up to
V * u = 3e-3, which shifts every log-probability of the row by as much. One
such shift changes the KL of a row by the same amount, five times the mean KL
of 6e-4 that the tests measure. Two float32 runs that differ only in batch
size agree far better in practice (they differed by 1.1e-4 relative on
SmolLM2), but nothing bounds that. So the tests load the models in float64
(the engine then computes in float64, see `metric.divergence.computation_dtype`)
and bound the difference as follows, with u = 2**-53 (about 1.1e-16), for one
counted position whose exact KL is K, over a vocabulary of V tokens, with
logits of magnitude at most Z:

1. The forward pass. Every logit is a chain of dot products; one of length n
   has an absolute error of at most n * u * (the sum of the magnitudes of its
   products), in any summation order. Taking that sum as the logit's own
   magnitude and letting the errors of the L layers add up (not multiply), a
   logit is off by at most delta = L * N * u * Z, where N is the longest sum
   (the hidden size, the MLP's intermediate size or the sequence length).
2. What that does to the KL. With q = softmax(z), a change delta_i of the
   logits changes log q_i by delta_i - sum_j q_j delta_j, so the KL changes by
   sum_i (q_i - p_i) delta_i for the current logits, at most
   |p - q|_1 * delta <= sqrt(2 K) * delta (Pinsker's inequality), and by at
   most 2 * delta * sum_i p_i |log p_i - log q_i| <= 2 * delta * S for the
   reference logits, where S = K + sqrt(2 K) bounds sum_i p_i |log(p_i / q_i)|
   (the negative terms add up to at most the total variation, and
   p log(q / p) <= q - p). Both together: at most 3 * delta * S.
3. The log-softmax and the KL sum themselves. The log-sum-exp of V terms
   shifts a row's log-probabilities by at most (V + 2) * u; the reference's and
   the current row's shifts change the KL by at most twice that. The sum of the
   V terms p_i (log p_i - log q_i), of absolute sum at most S, adds at most
   (V + 3) * u * S.

Hugging Face's `generate` hands out logits rounded to float32 (relative error
at most 2**-24 each), which item 2 turns into at most 3 * 2**-24 * Z * S; that
term joins the bound of a computation from such logits.

The mean over counted positions is a weighted average of per-position values
(accumulated in float64 over a few hundred positions, which adds a negligible
n * u relative error), so its error is at most the bound at the mean KL: the
bound is concave in K. Two computations, each within the bound of the exact
value, differ by at most twice it.
"""

import contextlib
import math
import weakref
from typing import Any

import torch

#: float64's unit roundoff, 2**-53.
FLOAT64_UNIT_ROUNDOFF = 2.0**-53

#: float32's unit roundoff, 2**-24: logits that `generate` rounds to float32.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24


def longest_sum(model: Any, sequence_length: int) -> tuple[int, int]:
    """
    The number of layers L (decoder layers and the output layer) and the longest
    sum N of the forward pass of a heretic `Model`'s Hugging Face model.
    """
    config = model.model.config
    text_config = (
        config.get_text_config() if hasattr(config, "get_text_config") else config
    )
    layers = int(text_config.num_hidden_layers) + 1
    longest = max(
        int(text_config.hidden_size),
        int(getattr(text_config, "intermediate_size", 0) or 0),
        sequence_length,
    )
    return layers, longest


def kl_error_bound(
    kl: float, vocabulary: int, largest_logit: float, layers: int, longest: int
) -> float:
    """
    The largest difference between one float64 computation of a mean KL
    divergence `kl` and its exact value (see the module's docstring).
    """
    unit = FLOAT64_UNIT_ROUNDOFF
    kl = max(kl, 0.0)
    spread = kl + math.sqrt(2 * kl)
    logit_error = layers * longest * unit * largest_logit
    return (
        3 * logit_error * spread
        + 2 * (vocabulary + 2) * unit
        + (vocabulary + 3) * unit * spread
    )


#: `largest_logit`'s answers, by model, then by adapter state, prompts and tokens
#: (held only as long as the model lives).
_largest_logits: weakref.WeakKeyDictionary[
    Any, dict[tuple[Any, ...], tuple[float, int]]
] = weakref.WeakKeyDictionary()


def adapter_fingerprint(model: Any) -> float:
    """A number that changes whenever the LoRA adapters of `model` change."""
    with torch.no_grad():
        return float(
            sum(
                float(parameter.double().abs().sum()) * (index + 1)
                for index, (name, parameter) in enumerate(
                    sorted(model.model.named_parameters())
                )
                if "lora_" in name
            )
        )


def largest_logit(model: Any, prompts: list[Any], tokens: int) -> tuple[float, int]:
    """
    The largest logit magnitude of `model`, as it is now and as the original (its
    adapters disabled), over the positions that a reference of `tokens` tokens
    scores, and the longest sequence it reads (remembered per adapter state).
    """
    answers = _largest_logits.setdefault(model, {})
    key = (adapter_fingerprint(model), tuple(map(repr, prompts)), tokens)
    if key not in answers:
        answers[key] = measured_largest_logit(model, prompts, tokens)
    return answers[key]


def measured_largest_logit(
    model: Any, prompts: list[Any], tokens: int
) -> tuple[float, int]:
    """`largest_logit`, measured by generating with `model`."""
    largest = 0.0
    for original in (False, True):
        with model.model.disable_adapter() if original else contextlib.nullcontext():
            inputs, outputs = model.generate(
                prompts,
                max_new_tokens=tokens,
                output_logits=True,
                return_dict_in_generate=True,
            )
        largest = max([largest, *(float(step.abs().max()) for step in outputs.logits)])
    return largest, int(inputs["input_ids"].shape[1]) + tokens


def model_kl_tolerance(
    model: Any,
    prompts: list[Any],
    tokens: int,
    kl: float,
    float32_logits: bool = False,
) -> float:
    """
    How far two float64 computations of the mean KL `kl` of `model` on `prompts`
    at `tokens` positions may differ: twice the bound of each, and with
    `float32_logits`, the rounding of one of them's logits to float32.
    """
    largest, sequence_length = largest_logit(model, prompts, tokens)
    layers, longest = longest_sum(model, sequence_length)
    vocabulary = int(model.model.get_output_embeddings().weight.shape[0])
    tolerance = 2 * kl_error_bound(kl, vocabulary, largest, layers, longest)
    if float32_logits:
        spread = max(kl, 0.0) + math.sqrt(2 * max(kl, 0.0))
        tolerance += 3 * FLOAT32_UNIT_ROUNDOFF * largest * spread
    return tolerance


def first_token_log_probabilities(model: Any, prompts: list[Any]) -> torch.Tensor:
    """
    The first generated token's log-probabilities as heretic's `get_logprobs`
    obtains them (`generate` with `output_logits`, without a cache), in float64:
    `generate` hands out its logits rounded to float32, and the log-softmax that
    heretic takes of those in float32 has no useful error bound (see above).
    """
    _, outputs = model.generate(
        prompts,
        max_new_tokens=1,
        output_logits=True,
        return_dict_in_generate=True,
        use_cache=False,
    )
    return torch.log_softmax(outputs.logits[0].double(), dim=-1)


def assert_float64_model(model: Any) -> None:
    """The bounds hold for float64 computations only."""
    assert model.model.dtype == torch.float64
