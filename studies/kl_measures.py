# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The three kinds of KL divergence that the evidence study compares.

- First-token KL, as heretic-llm 1.4.0's `Evaluator` computes it: the
  log-softmax of the raw logits of the first token that `Model.generate`
  produces, and `F.kl_div(..., reduction="batchmean", log_target=True)`
  against the original's. heretic's `Model.get_logprobs` generates that one
  token alone; here it is the first step of the free-running generation below,
  the same forward pass over the same batches, which saves a pass per model
  (`verify` also runs heretic's `get_logprobs_batched`, and the smoke test
  checks that both agree).
- Teacher-forced KL at N = 3, 8, 16 from one engine with N = 16: because of
  causal masking, the logits at the first n positions of a pass over prompt +
  15 reference tokens are those of a pass over prompt + n - 1 tokens, so the
  N = n score is the masked mean over the first n positions (verified against a
  separate N = 3 engine by the smoke test).
- Free-running KL at N = 3, 8, as heretic pull request #209 proposed: each
  model generates N tokens itself (greedy, key-value cache), and every
  (prompt, position) compares the modified model's distribution with the
  original's at the same position of the original's own generation; the mean
  is taken over all rows that both generations reached, like the pull
  request's `batchmean` over (prompts x N) rows (no end-of-sequence masking).
  The one implementation is `development/free_running.py`, which the scoring
  benchmark uses too.
"""

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from heretic.model import Model
from heretic.utils import Prompt
from torch import Tensor

from development.free_running import free_running_kl, free_running_log_probabilities
from heretic_teacher_forced_kl.metric.engine import TeacherForcedKLEngine
from heretic_teacher_forced_kl.metric.measurement import (
    masked_means,
    masked_weighted_mean,
)

#: The N of teacher-forced KL; one engine with the largest serves them all.
TEACHER_FORCED_TOKENS = (3, 8, 16)

#: The N of free-running KL.
FREE_RUNNING_TOKENS = (3, 8)

#: The KL variants, in the order of every table and plot.
KL_VARIANTS = (
    "first_token",
    *(f"teacher_forced_{tokens}" for tokens in TEACHER_FORCED_TOKENS),
    *(f"free_running_{tokens}" for tokens in FREE_RUNNING_TOKENS),
)

#: Readable names of the KL variants.
KL_VARIANT_LABELS = {
    "first_token": "first-token KL",
    **{
        f"teacher_forced_{tokens}": f"teacher-forced KL, N={tokens}"
        for tokens in TEACHER_FORCED_TOKENS
    },
    **{
        f"free_running_{tokens}": f"free-running KL, N={tokens}"
        for tokens in FREE_RUNNING_TOKENS
    },
}


def first_token_log_probabilities(free_running: list[Tensor]) -> Tensor:
    """The first generated position of free-running log-probabilities: (prompts, vocabulary)."""
    return torch.cat([part[:, 0] for part in free_running])


class KLMeasures:
    """
    The references of every KL variant, built once from the original model,
    and `measure`, which scores the current (possibly abliterated) model.
    """

    def __init__(
        self,
        model: Model,
        prompts: list[Prompt],
        verify: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        quiet = log if log is not None else (lambda message: None)
        self.prompts = prompts
        self.verify = verify
        self.free_running_reference = free_running_log_probabilities(
            model, prompts, max(FREE_RUNNING_TOKENS)
        )
        self.first_token_reference = first_token_log_probabilities(
            self.free_running_reference
        )
        self.engine = TeacherForcedKLEngine(
            kl_tokens=max(TEACHER_FORCED_TOKENS),
            batch_size=model.settings.batch_size,
            log=quiet,
        )
        self.engine.build_reference(model, prompts)
        #: The seconds that the last `measure` spent on each kind of KL.
        self.seconds: dict[str, float] = {}
        #: The last `measure`'s teacher-forced KL at each position, averaged over
        #: the prompts that count there (position 1 is first-token KL; None where
        #: no prompt's continuation reaches the position).
        self.position_means: list[float | None] = []
        # With `verify`: heretic's own first-token path, and a separate engine with
        # N = 3 to check that slicing the N = 16 pass is exact.
        self.heretic_first_token_reference: Tensor | None = None
        self.separate_engine: TeacherForcedKLEngine | None = None
        if verify:
            self.heretic_first_token_reference = model.get_logprobs_batched(prompts)
            self.separate_engine = TeacherForcedKLEngine(
                kl_tokens=min(TEACHER_FORCED_TOKENS),
                batch_size=model.settings.batch_size,
                log=quiet,
            )
            self.separate_engine.build_reference(model, prompts)

    def reference_continuations(self, model: Model) -> list[str]:
        """The original's 16-token teacher-forcing continuations, decoded (for the record)."""
        targets = torch.cat([batch.targets.cpu() for batch in self.engine.batches])
        return model.tokenizer.batch_decode(targets, skip_special_tokens=True)

    def measure(self, model: Model) -> dict[str, float]:
        """Every KL variant of the current model against the original."""
        start = time.perf_counter()
        free_running = free_running_log_probabilities(
            model, self.prompts, max(FREE_RUNNING_TOKENS)
        )
        values: dict[str, float] = {
            "first_token": F.kl_div(
                first_token_log_probabilities(free_running),
                self.first_token_reference,
                reduction="batchmean",
                log_target=True,
            ).item()
        }
        for tokens in FREE_RUNNING_TOKENS:
            values[f"free_running_{tokens}"] = free_running_kl(
                free_running, self.free_running_reference, tokens
            )
        middle = time.perf_counter()

        measurement = self.engine.measure(model.model)
        for tokens in TEACHER_FORCED_TOKENS:
            values[f"teacher_forced_{tokens}"] = masked_weighted_mean(
                measurement.kl[:, :tokens],
                measurement.counted[:, :tokens],
                measurement.weights[:tokens],
            )
        self.position_means = [
            None if math.isnan(value) else value
            for value in masked_means(measurement.kl, measurement.counted, 0).tolist()
        ]
        # The engine's first position is heretic's first-token KL by another path.
        values["teacher_forced_position_1"] = measurement.first_token_mean
        self.seconds = {
            "first_token_and_free_running": middle - start,
            "teacher_forced": time.perf_counter() - middle,
        }

        if self.heretic_first_token_reference is not None:
            values["first_token_heretic_get_logprobs"] = F.kl_div(
                model.get_logprobs_batched(self.prompts),
                self.heretic_first_token_reference,
                reduction="batchmean",
                log_target=True,
            ).item()
        if self.separate_engine is not None:
            values["teacher_forced_3_separate_engine"] = self.separate_engine.score(
                model.model
            )
        return values
