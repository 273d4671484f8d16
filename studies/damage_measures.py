# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Two measures of model damage that do not use KL divergence.

- Question accuracy: the share of short factual and arithmetic questions,
  among those the original model answers correctly, that the current model
  still answers correctly. An answer is correct when one of the accepted
  answers appears, case-insensitively and as a whole word, in the greedy
  response (heretic's batched, left-padded generation path).
- Held-out NLL increase: the original model answers held-out prompts greedily
  (64 tokens); the damage is the mean per-token negative log-likelihood of
  those answers under the current model minus under the original, counted up
  to and including the answer's end-of-sequence token.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from heretic.model import Model
from heretic.utils import Prompt, batchify

from heretic_teacher_forced_kl.metric.reference import (
    ReferenceBatch,
    build_reference_batch,
)

#: The question set of the studies (not shipped with the package).
QUESTIONS_PATH = Path(__file__).resolve().parent / "data" / "factual_arithmetic.jsonl"

#: The held-out prompts whose original answers give the NLL measure of damage.
HELDOUT_PROMPTS_PATH = Path(__file__).resolve().parent / "data" / "heldout_prompts.txt"

#: How often the original's answers are re-checked in the measurement's batches.
CONFIRMATION_ROUNDS = 5


@dataclass(frozen=True)
class Question:
    """One question of `studies/data/factual_arithmetic.jsonl`."""

    identifier: str
    kind: str
    question: str
    answers: tuple[str, ...]


def load_questions(path: Path) -> list[Question]:
    """Reads the questions file, one JSON object per line."""
    questions: list[Question] = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            if not line.strip():
                continue
            value: dict[str, Any] = json.loads(line)
            questions.append(
                Question(
                    identifier=str(value["id"]),
                    kind=str(value["kind"]),
                    question=str(value["question"]),
                    answers=tuple(str(answer) for answer in value["answers"]),
                )
            )
    return questions


def answer_matches(response: str, answers: tuple[str, ...]) -> bool:
    """Whether one of `answers` appears in `response` as a whole word, ignoring case."""
    return any(
        re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", response, flags=re.IGNORECASE)
        for answer in answers
    )


def greedy_responses(
    model: Model, prompts: list[Prompt], tokens: int, batch_size: int
) -> list[str]:
    """Greedy responses of at most `tokens` tokens, through heretic's `generate` (left padding)."""
    responses: list[str] = []
    for batch in batchify(prompts, batch_size):
        inputs, outputs = model.generate(batch, max_new_tokens=tokens)
        responses.extend(
            model.tokenizer.batch_decode(
                outputs[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
            )
        )
    return responses


class QuestionAccuracy:
    """
    The questions that the original model answers correctly, and `measure`,
    which returns the share of them that the current model answers correctly.
    """

    def __init__(
        self,
        model: Model,
        questions: list[Question],
        limit: int | None,
        response_tokens: int,
        batch_size: int,
    ) -> None:
        self.response_tokens = response_tokens
        self.batch_size = batch_size
        self.examined = 0
        kept: list[Question] = []
        # Candidates are examined batch by batch until `limit` correct ones are found.
        for batch in batchify(questions, batch_size):
            if limit is not None and len(kept) >= limit:
                break
            responses = greedy_responses(
                model, self.prompts_for(model, batch), response_tokens, batch_size
            )
            self.examined += len(batch)
            kept.extend(
                question
                for question, response in zip(batch, responses, strict=True)
                if answer_matches(response, question.answers)
            )
        if limit is not None:
            kept = kept[:limit]
        # The kept questions form other batches when they are measured, and padding
        # can change a greedy answer, so the original is checked once more in the
        # measurement's batches, until every kept answer is correct there too.
        for _ in range(CONFIRMATION_ROUNDS):
            responses = greedy_responses(
                model, self.prompts_for(model, kept), response_tokens, batch_size
            )
            correct = [
                answer_matches(response, question.answers)
                for question, response in zip(kept, responses, strict=True)
            ]
            if all(correct):
                break
            kept = [
                question for question, is_correct in zip(kept, correct) if is_correct
            ]
        else:
            raise RuntimeError(
                "The original model's answers change with every batching; "
                "set --batch-size 1 to avoid padding."
            )
        if not kept:
            raise ValueError(
                "The original model answers none of the examined questions correctly; "
                "raise --questions or --question-tokens."
            )
        self.questions = kept
        self.original_responses = responses

    @staticmethod
    def prompts_for(model: Model, questions: list[Question]) -> list[Prompt]:
        """The questions as heretic prompts, with heretic's system prompt."""
        return [
            Prompt(system=model.settings.system_prompt, user=question.question)
            for question in questions
        ]

    def measure(self, model: Model) -> tuple[float, int]:
        """The current model's accuracy on the kept questions, and its number of correct answers."""
        responses = greedy_responses(
            model,
            self.prompts_for(model, self.questions),
            self.response_tokens,
            self.batch_size,
        )
        correct = sum(
            answer_matches(response, question.answers)
            for question, response in zip(self.questions, responses, strict=True)
        )
        return correct / len(self.questions), correct


def negative_log_likelihood_sum(
    hf_model: Any, batch: ReferenceBatch
) -> tuple[float, int]:
    """
    The summed negative log-likelihood of a batch's counted reference tokens
    under `hf_model`, from one teacher-forced pass, and the number of tokens.
    """
    tokens = batch.targets.shape[1]
    logits = hf_model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
        logits_to_keep=tokens,
    ).logits[:, -tokens:, :]
    log_probabilities = F.log_softmax(logits.float(), dim=-1)
    target_log_probabilities = log_probabilities.gather(
        -1, batch.targets.unsqueeze(-1)
    ).squeeze(-1)
    counted = batch.counted
    return float(-(target_log_probabilities * counted).sum()), int(counted.sum())


class HeldoutLikelihood:
    """
    The original model's greedy answers to held-out prompts, and `measure`,
    which returns the current model's mean per-token NLL of them minus the original's.
    """

    def __init__(self, model: Model, prompts: list[Prompt], tokens: int) -> None:
        with torch.no_grad():
            self.batches = [
                build_reference_batch(model, batch, tokens)
                for batch in batchify(prompts, model.settings.batch_size)
            ]
        self.original_nll = self.mean_negative_log_likelihood(model)

    def answers(self, model: Model) -> list[str]:
        """The original's held-out answers, decoded (for the record)."""
        targets = torch.cat([batch.targets for batch in self.batches])
        return model.tokenizer.batch_decode(targets, skip_special_tokens=True)

    def mean_negative_log_likelihood(self, model: Model) -> float:
        """The current model's mean per-token NLL of the original's answers."""
        total = 0.0
        count = 0
        with torch.no_grad():
            for batch in self.batches:
                batch_total, batch_count = negative_log_likelihood_sum(
                    model.model, batch
                )
                total += batch_total
                count += batch_count
        return total / count

    def measure(self, model: Model) -> tuple[float, float]:
        """The current model's mean NLL and its increase over the original's."""
        nll = self.mean_negative_log_likelihood(model)
        return nll, nll - self.original_nll
