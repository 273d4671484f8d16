# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Free-running N-token KL divergence, as heretic pull request #209 proposed it.

Each model generates N tokens itself (greedy, with the key-value cache), and
every (prompt, position) compares the modified model's distribution with the
original's at the same position of the original's own generation. The mean is
taken over all rows that both generations reached, like the pull request's
`batchmean` over (prompts x N) rows (no end-of-sequence masking).

The log-probabilities are taken the way heretic-llm's `Model.get_logprobs`
takes them, position by position: the raw logits of `generate` (not the
processed scores), a log-softmax in float32, and the result moved to the CPU
when heretic's `offload_outputs_to_cpu` setting asks for it. The evidence
study (`studies/kl_measures.py`) and the scoring benchmark
(`benchmarks/scoring_speed.py`) both measure free-running KL through this one
module.
"""

import torch
import torch.nn.functional as F
from heretic.model import Model
from heretic.utils import Prompt, batchify
from torch import Tensor


def free_running_log_probabilities(
    model: Model, prompts: list[Prompt], tokens: int
) -> list[Tensor]:
    """
    Lets the model generate `tokens` tokens per prompt through heretic's prompt
    path, batch by batch, and returns the float32 log-softmax of the raw logits
    at every generated position: (batch prompts, generated positions,
    vocabulary) per batch, offloaded to the CPU as heretic offloads its own.
    """
    parts: list[Tensor] = []
    for batch in batchify(prompts, model.settings.batch_size):
        _, outputs = model.generate(
            batch,
            max_new_tokens=tokens,
            output_logits=True,
            return_dict_in_generate=True,
        )
        logits = torch.stack(outputs.logits, dim=1)
        # transformers already hands out the raw logits of greedy generation in
        # float32; the upcast keeps the log-softmax in float32 whatever the
        # release or the model's dtype, as heretic's KL needs.
        log_probabilities = F.log_softmax(logits.float(), dim=-1)
        if model.settings.offload_outputs_to_cpu:
            del outputs, logits
            log_probabilities = log_probabilities.cpu()
        parts.append(log_probabilities)
    return parts


def free_running_kl(
    current: list[Tensor], reference: list[Tensor], tokens: int
) -> float:
    """
    Pull request #209's KL over the first `tokens` positions: every (prompt,
    position) is a row, and the KL is summed and divided by the number of rows.
    Where generation stopped early (every row of a batch ended), only the
    positions that both generations reached are compared.
    """
    total = 0.0
    rows = 0
    for current_part, reference_part in zip(current, reference, strict=True):
        positions = min(tokens, current_part.shape[1], reference_part.shape[1])
        vocabulary = current_part.shape[-1]
        total += F.kl_div(
            current_part[:, :positions].reshape(-1, vocabulary),
            reference_part[:, :positions].reshape(-1, vocabulary),
            reduction="sum",
            log_target=True,
        ).item()
        rows += current_part.shape[0] * positions
    return total / rows
