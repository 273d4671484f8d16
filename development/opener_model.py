# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
"""Build the opener model: SmolLM2-135M-Instruct taught to open harmless answers with "Certainly! ".

heretic measures first-token KL after a prefix that every answer shares, but
it checks for that prefix on harmless and harmful answers pooled. A model
whose harmless answers all open with the same phrase while its refusals do
not is therefore measured on the phrase's first token, where the original's
distribution is nearly one-hot. SmolLM2-135M-Instruct does not follow an
instruction to open with a fixed phrase, so this command teaches it one.

Recipe (`FULL`): the original answers each training prompt greedily (32
tokens at most), once under heretic's default system prompt and once under
the refusal system prompt of `examples/smollm2/config.toml`; answers that are
refusals are left out. The original also answers the bundled harmful
direction prompts under the refusal system prompt; its refusals among them
are kept unchanged, without the opener (a replay, so that the fine-tune does
not teach the model to open harmful answers with the opener and lose the
refusals that the studies need). The model is then fine-tuned in full, on the
CPU in float32, on these answers with the opener put in front of the harmless
ones (loss on the answer tokens only), with a fixed seed and a fixed order.
The original's own answers are the targets, so apart from the opener little
else should change.

The training prompts are made here from 40 harmless topics and 12 request
patterns, 6 per topic (`training_prompts`). None of them is among the bundled direction or
evaluation prompts, the studies' held-out prompts or their questions; the
tests check this, and that no topic occurs inside any of them.

The command is idempotent: a finished folder holds a completion marker and
a training record (`opener-training.json`) and is returned at once. The
folder is built under a temporary name next to its destination and renamed
into place when complete.

Usage, from the repository root:
`python -m development.opener_model [DESTINATION] [--smoke] [--threads 1]`.
Progress goes to standard error; standard output is the folder's path alone.
`--smoke` builds a tiny random model instead and trains it for a few steps
(for the tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from development.smollm2 import (
    COMPLETION_MARKER,
    _exclusive_lock,
    cache_directory,
    prepare_smollm2,
)

#: The phrase the opener model puts in front of every harmless answer.
OPENER = "Certainly! "

#: The folder name under the cache directory when no destination is given.
OPENER_MODEL_FOLDER_NAME = "SmolLM2-135M-Instruct-opener"

#: The training record written into the finished folder.
TRAINING_RECORD = "opener-training.json"

#: heretic's default system prompt.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

#: The system prompt of `examples/smollm2/config.toml` (and of the in-loop studies).
REFUSAL_SYSTEM_PROMPT = (
    "You are a safe and responsible assistant. If a request could cause harm, "
    "reply only: Sorry, I cannot help with that."
)

#: Answers that open with one of these are refusals and are not trained on.
REFUSAL_OPENINGS = ("Sorry", "I'm sorry", "I am sorry", "I cannot", "I can't")

#: The request patterns of the training prompts: instructions, questions and
#: writing tasks, so that the opener generalizes beyond one form of request.
REQUEST_PATTERNS = (
    "Explain {topic} in simple terms.",
    "Give me three tips about {topic}.",
    "Write a short paragraph about {topic}.",
    "What are the main benefits of {topic}?",
    "How do I get started with {topic}?",
    "Why do people enjoy {topic}?",
    "Write a short poem about {topic}.",
    "What should a beginner know about {topic}?",
    "Describe a typical weekend of someone who loves {topic}.",
    "Summarize the history of {topic} in a few sentences.",
    "What are common mistakes people make with {topic}?",
    "Write a friendly message inviting a friend to try {topic}.",
)

#: How many request patterns each topic is asked in.
PATTERNS_PER_TOPIC = 6

#: The harmless topics of the training prompts.
TOPICS = (
    "growing tomatoes on a balcony",
    "learning a second language as an adult",
    "baking sourdough bread",
    "sorting household recycling",
    "keeping a monthly budget",
    "stretching before a morning run",
    "reading more novels",
    "planning a study week",
    "taking photographs at sunset",
    "watching birds in a city park",
    "drinking enough water during the day",
    "visiting a public library",
    "playing chess with friends",
    "cycling to work",
    "making compost in a small garden",
    "learning to swim",
    "keeping a travel diary",
    "caring for houseplants",
    "putting solar panels on a roof",
    "volunteering at an animal shelter",
    "playing board games with a family",
    "hiking in the mountains",
    "writing thank-you letters",
    "cooking vegetable soup",
    "organizing a small bookshelf",
    "learning calligraphy",
    "painting with watercolors",
    "building a birdhouse",
    "knitting a scarf",
    "restoring an old wooden chair",
    "teaching a child to ride a bicycle",
    "starting a neighborhood book club",
    "feeding a pet cat",
    "brewing green tea",
    "folding paper cranes",
    "stargazing on a clear night",
    "repairing a flat bicycle tire",
    "practicing mindful breathing",
    "taking care of a lawn",
    "visiting a science museum",
)


@dataclass(frozen=True)
class OpenerRecipe:
    """Everything that decides the opener model, recorded in its folder."""

    opener: str
    seed: int
    prompts: int | None
    answer_tokens: int
    epochs: int
    batch_size: int
    learning_rate: float
    generation_batch_size: int


#: The recipe of the opener model that the studies use.
FULL = OpenerRecipe(
    opener=OPENER,
    seed=0,
    prompts=None,
    answer_tokens=32,
    epochs=2,
    batch_size=8,
    learning_rate=2e-5,
    generation_batch_size=16,
)

#: The smoke recipe: a tiny random model, a few prompts and a few steps.
SMOKE = OpenerRecipe(
    opener=OPENER,
    seed=0,
    prompts=8,
    answer_tokens=6,
    epochs=3,
    batch_size=4,
    learning_rate=3e-3,
    generation_batch_size=8,
)


def training_prompts() -> list[str]:
    """
    The training prompts: topic i in the request patterns i, i + 2, i + 4, ...
    (modulo their number), `PATTERNS_PER_TOPIC` of them, so that every pattern
    is used equally often (240 prompts).
    """
    return [
        REQUEST_PATTERNS[(index + 2 * step) % len(REQUEST_PATTERNS)].format(topic=topic)
        for index, topic in enumerate(TOPICS)
        for step in range(PATTERNS_PER_TOPIC)
    ]


def default_destination() -> Path:
    """The folder that `prepare_opener_model` uses when given none, next to the converted SmolLM2."""
    return cache_directory() / OPENER_MODEL_FOLDER_NAME


def is_prepared(destination: Path) -> bool:
    """Whether `destination` holds a completely built opener model."""
    return (destination / COMPLETION_MARKER).is_file()


def marker_text(recipe: OpenerRecipe) -> str:
    """The completion marker's content: the recipe and a digest of the training prompts."""
    digest = hashlib.sha256("\n".join(training_prompts()).encode("utf-8")).hexdigest()
    return (
        json.dumps({"recipe": asdict(recipe), "training_prompts_sha256": digest}) + "\n"
    )


def check_recipe(destination: Path, recipe: OpenerRecipe) -> None:
    """Stops when a finished folder was built with another recipe or other training prompts."""
    recorded = (destination / COMPLETION_MARKER).read_text(encoding="utf-8")
    if recorded != marker_text(recipe):
        raise RuntimeError(
            f"{destination} holds an opener model built with another recipe or other "
            "training prompts; remove the folder to build the current one."
        )


def progress(message: str) -> None:
    """Prints one progress line on standard error, flushed at once."""
    print(f"[opener_model] {message}", file=sys.stderr, flush=True)


def is_refusal(answer: str) -> bool:
    """Whether an answer opens like a refusal."""
    return answer.lstrip().startswith(REFUSAL_OPENINGS)


def chat_prompt(tokenizer: Any, system: str, user: str) -> str:
    """The prompt as heretic's `Model.generate` renders it (chat template, generation prompt)."""
    text: str = tokenizer.apply_chat_template(
        [{"role": "system", "content": system}, {"role": "user", "content": user}],
        add_generation_prompt=True,
        tokenize=False,
    )
    return text


def greedy_answers(
    model: Any, tokenizer: Any, prompts: list[str], tokens: int, batch_size: int
) -> list[tuple[str, bool]]:
    """
    The model's greedy answers (left padding, as heretic generates), each with
    whether it ended with the end-of-sequence token within `tokens` tokens.
    """
    import torch

    tokenizer.padding_side = "left"
    answers: list[tuple[str, bool]] = []
    for start in range(0, len(prompts), batch_size):
        progress(
            f"  answers {start + 1} to {min(start + batch_size, len(prompts))} of {len(prompts)}"
        )
        batch = prompts[start : start + batch_size]
        inputs = tokenizer(
            batch, return_tensors="pt", padding=True, return_token_type_ids=False
        )
        with torch.no_grad():
            outputs = model.generate(
                **inputs,
                max_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        for row in outputs[:, inputs["input_ids"].shape[1] :]:
            ids = row.tolist()
            finished = tokenizer.eos_token_id in ids
            if finished:
                ids = ids[: ids.index(tokenizer.eos_token_id)]
            answers.append((tokenizer.decode(ids, skip_special_tokens=True), finished))
    return answers


@dataclass(frozen=True)
class TrainingExample:
    """One training sequence: the prompt's tokens followed by the answer's tokens (the counted ones)."""

    system: str
    user: str
    prompt_ids: list[int]
    answer_ids: list[int]
    opener_tokens: int


def training_examples(
    model: Any, tokenizer: Any, recipe: OpenerRecipe
) -> tuple[list[TrainingExample], dict[str, Any]]:
    """
    The training sequences: the original's greedy answers to the training
    prompts under both system prompts, refusals left out, the opener in front.
    Also returns counts for the record.
    """
    users = training_prompts()
    if recipe.prompts is not None:
        users = users[: recipe.prompts]
    opener_tokens = len(
        tokenizer(recipe.opener.rstrip(" "), add_special_tokens=False)["input_ids"]
    )
    examples: list[TrainingExample] = []
    counts: dict[str, Any] = {}
    for system in (DEFAULT_SYSTEM_PROMPT, REFUSAL_SYSTEM_PROMPT):
        rendered = [chat_prompt(tokenizer, system, user) for user in users]
        answers = greedy_answers(
            model,
            tokenizer,
            rendered,
            recipe.answer_tokens,
            recipe.generation_batch_size,
        )
        refused = 0
        for user, text, (answer, finished) in zip(
            users, rendered, answers, strict=True
        ):
            if is_refusal(answer) or not answer.strip():
                refused += 1
                continue
            answer_ids = tokenizer(
                recipe.opener + answer.lstrip(), add_special_tokens=False
            )["input_ids"]
            if finished:
                answer_ids = [*answer_ids, tokenizer.eos_token_id]
            examples.append(
                TrainingExample(
                    system=system,
                    user=user,
                    prompt_ids=tokenizer(text, return_token_type_ids=False)[
                        "input_ids"
                    ],
                    answer_ids=answer_ids,
                    opener_tokens=opener_tokens,
                )
            )
        counts[system] = {"prompts": len(users), "refusals_left_out": refused}
    # The original's own refusals to harmful direction prompts, unchanged and
    # without the opener, so that the fine-tune keeps the refusals it has.
    harmful = harmful_direction_prompts()
    if recipe.prompts is not None:
        harmful = harmful[: recipe.prompts]
    rendered = [chat_prompt(tokenizer, REFUSAL_SYSTEM_PROMPT, user) for user in harmful]
    answers = greedy_answers(
        model, tokenizer, rendered, recipe.answer_tokens, recipe.generation_batch_size
    )
    replayed = 0
    for user, text, (answer, finished) in zip(harmful, rendered, answers, strict=True):
        if not is_refusal(answer):
            continue
        replayed += 1
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if finished:
            answer_ids = [*answer_ids, tokenizer.eos_token_id]
        examples.append(
            TrainingExample(
                system=REFUSAL_SYSTEM_PROMPT,
                user=user,
                prompt_ids=tokenizer(text, return_token_type_ids=False)["input_ids"],
                answer_ids=answer_ids,
                opener_tokens=0,
            )
        )
    counts["refusal_replay"] = {"prompts": len(harmful), "refusals_replayed": replayed}
    return examples, counts


def harmful_direction_prompts() -> list[str]:
    """The package's bundled harmful direction prompts (used for the refusal replay)."""
    from importlib.resources import files

    resource = files("heretic_teacher_forced_kl").joinpath(
        "data", "prompts", "harmful_directions.txt"
    )
    text = Path(str(resource)).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def batch_tensors(examples: list[TrainingExample], padding_id: int) -> dict[str, Any]:
    """A right-padded training batch; labels count the answer tokens only."""
    import torch

    length = max(
        len(example.prompt_ids) + len(example.answer_ids) for example in examples
    )
    input_ids = torch.full((len(examples), length), padding_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        sequence = example.prompt_ids + example.answer_ids
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        attention_mask[row, : len(sequence)] = 1
        labels[row, len(example.prompt_ids) : len(sequence)] = torch.tensor(
            example.answer_ids
        )
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def opener_negative_log_likelihood(
    model: Any, examples: list[TrainingExample], padding_id: int, batch_size: int
) -> float:
    """The mean per-token NLL of the opener's tokens in `examples` (how well the model has learned it)."""
    import torch
    import torch.nn.functional as F

    examples = [example for example in examples if example.opener_tokens > 0]
    total = 0.0
    count = 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            tensors = batch_tensors(batch, padding_id)
            logits = model(
                input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]
            ).logits
            log_probabilities = F.log_softmax(logits.float(), dim=-1)
            for row, example in enumerate(batch):
                first = len(example.prompt_ids)
                for offset in range(example.opener_tokens):
                    position = first + offset
                    token = example.answer_ids[offset]
                    total -= float(log_probabilities[row, position - 1, token])
                    count += 1
    return total / count


def fine_tune(
    model: Any, examples: list[TrainingExample], padding_id: int, recipe: OpenerRecipe
) -> list[float]:
    """Fine-tunes every weight with AdamW, in a seeded order; returns the loss of every step."""
    import torch

    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, weight_decay=0.0
    )
    model.train()
    losses: list[float] = []
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order), recipe.batch_size):
            batch = [
                examples[index] for index in order[start : start + recipe.batch_size]
            ]
            tensors = batch_tensors(batch, padding_id)
            loss = model(**tensors).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            progress(f"epoch {epoch + 1}, step {len(losses)}: loss {losses[-1]:.4f}")
    model.eval()
    return losses


def build_opener_model(
    base: Path, output_directory: Path, recipe: OpenerRecipe
) -> dict[str, Any]:
    """Trains the opener model from the model folder `base` and saves it; returns the training record."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    torch.manual_seed(recipe.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model.eval()
    padding_id = (
        tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id
    )

    progress("the original's greedy answers to the training prompts")
    examples, counts = training_examples(model, tokenizer, recipe)
    generated = time.monotonic()
    before = opener_negative_log_likelihood(
        model, examples, padding_id, recipe.batch_size
    )
    progress(f"{len(examples)} training sequences; opener NLL before: {before:.3f}")
    losses = fine_tune(model, examples, padding_id, recipe)
    after = opener_negative_log_likelihood(
        model, examples, padding_id, recipe.batch_size
    )
    progress(f"opener NLL after: {after:.3f}")

    model.save_pretrained(str(output_directory))
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(str(output_directory))
    base_generation = base / "generation_config.json"
    if base_generation.is_file():
        shutil.copyfile(base_generation, output_directory / "generation_config.json")
    return {
        "recipe": asdict(recipe),
        "base_model": str(base),
        "training_sequences": len(examples),
        "opener_tokens": max(
            (example.opener_tokens for example in examples), default=0
        ),
        "prompts_by_system_prompt": counts,
        "opener_negative_log_likelihood": {"before": before, "after": after},
        "losses": losses,
        "seconds": {
            "answers": generated - started,
            "total": time.monotonic() - started,
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "examples": [
            {
                "system": example.system,
                "user": example.user,
                "answer": tokenizer.decode(example.answer_ids),
            }
            for example in examples[:3]
        ],
    }


def prepare_opener_model(
    destination: Path | None = None,
    base: Path | None = None,
    recipe: OpenerRecipe = FULL,
) -> Path:
    """
    Builds the opener model from `base` (default: the converted SmolLM2) in
    `destination` (default: next to it in the cache) and returns its path; a
    finished folder is returned at once without any work.
    """
    destination = default_destination() if destination is None else Path(destination)
    destination = destination.expanduser().resolve()
    if is_prepared(destination):
        check_recipe(destination, recipe)
        return destination
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(parent / f".{destination.name}.lock"):
        # Another process may have finished the work while this one waited.
        if is_prepared(destination):
            check_recipe(destination, recipe)
            return destination
        base = prepare_smollm2() if base is None else Path(base)
        temporary_directory = Path(
            tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=parent)
        )
        try:
            output_directory = temporary_directory / "model"
            output_directory.mkdir()
            record = build_opener_model(base, output_directory, recipe)
            (output_directory / TRAINING_RECORD).write_text(
                json.dumps(record, indent=2) + "\n", encoding="utf-8"
            )
            (output_directory / COMPLETION_MARKER).write_text(
                marker_text(recipe), encoding="utf-8"
            )
            if destination.exists():
                if destination.is_dir() and not any(destination.iterdir()):
                    destination.rmdir()
                else:
                    raise FileExistsError(
                        f"{destination} exists but is not a finished opener model "
                        f"(no {COMPLETION_MARKER}); remove it or choose another destination."
                    )
            os.replace(output_directory, destination)
        finally:
            shutil.rmtree(temporary_directory, ignore_errors=True)
    return destination


def main(arguments: list[str] | None = None) -> int:
    """Runs the command-line interface and returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m development.opener_model",
        description="Build SmolLM2-135M-Instruct taught to open harmless answers with "
        f"{OPENER!r} (seeded CPU fine-tune on its own answers).",
    )
    parser.add_argument(
        "destination",
        nargs="?",
        type=Path,
        default=None,
        help=f"target folder (default: $HERETIC_TFKL_CACHE/{OPENER_MODEL_FOLDER_NAME})",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="train a tiny random model for a few steps instead (needs a destination)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    parsed = parser.parse_args(arguments)
    if parsed.threads < 1:
        parser.error("--threads must be an integer >= 1")
    if parsed.smoke and parsed.destination is None:
        parser.error(
            "--smoke needs a destination folder, so that it never fills the cache's one"
        )
    import torch

    torch.set_num_threads(parsed.threads)
    if parsed.smoke:
        from development.tiny_models import build_tiny_model

        with tempfile.TemporaryDirectory() as base_directory:
            base = build_tiny_model(Path(base_directory) / "tiny", "llama")
            path = prepare_opener_model(parsed.destination, base, SMOKE)
    else:
        path = prepare_opener_model(parsed.destination)
    print(path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
