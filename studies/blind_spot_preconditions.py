# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The preconditions of the blind-spot studies: is the opener model a case that
first-token KL should miss, and is it still a working model?

Usage:

    python -m studies.blind_spot_preconditions [--model opener|PATH]
        [--original smollm2|PATH] [--output-dir docs/blind-spot] [--smoke]

For the opener model and, beside it, the original, this measures through
heretic-llm's own `Model`:

- the share of answers to the bundled harmless evaluation prompts that open
  with the opener, under heretic's default system prompt and under the refusal
  system prompt of `examples/smollm2/config.toml`;
- the tokens that the opener fills at the start of these answers;
- heretic's own common-prefix detection with `response_prefix` unset: heretic
  1.4.0's `main.run` generates answers to the first 100 harmless and 100
  harmful direction prompts with `Model.get_responses_batched` and takes their
  `os.path.commonprefix` with trailing spaces removed; this script does the
  same, for the in-loop studies' settings (32 + 32 direction prompts, 8-token
  answers, refusal system prompt) and for a user's (100 + 100 prompts under
  heretic's default system prompt);
- refusals of the 64 harmful evaluation prompts of the in-loop studies under
  the refusal system prompt, counted by heretic's `Evaluator.is_refusal`;
- the opener model's own damage against the original, on the evidence study's
  measures and sizes (`studies/evidence.py`): KL variants on 48 harmless
  evaluation prompts, accuracy on the questions the original answers
  correctly, and the increase of the held-out NLL of the original's answers.

It writes `preconditions.json` and `preconditions.md` into `--output-dir`.
"""

import argparse
import json
import shlex
import sys
import time
from collections import Counter
from os.path import commonprefix
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import transformers
from heretic.evaluator import Evaluator
from heretic.model import Model
from heretic.utils import Prompt

from development.opener_model import (
    DEFAULT_SYSTEM_PROMPT,
    OPENER,
    REFUSAL_SYSTEM_PROMPT,
    TRAINING_RECORD,
    prepare_opener_model,
)
from studies.damage_measures import (
    HELDOUT_PROMPTS_PATH,
    QUESTIONS_PATH,
    HeldoutLikelihood,
    QuestionAccuracy,
    load_questions,
)
from studies.kl_measures import KL_VARIANTS, KLMeasures
from studies.study_setup import (
    SMOLLM2,
    bundled_data_path,
    load_heretic_model,
    load_prompt_file,
    resolve_model_path,
)

#: The `--model` value that selects the opener model built by `development/opener_model.py`.
OPENER_MODEL = "opener"


def parse_arguments(arguments: list[str]) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.blind_spot_preconditions",
        description="Preconditions of the blind-spot studies on the opener model.",
    )
    parser.add_argument(
        "--model", default=OPENER_MODEL, help=f"{OPENER_MODEL!r} or a model folder"
    )
    parser.add_argument(
        "--original", default=SMOLLM2, help=f"{SMOLLM2!r} or a model folder"
    )
    parser.add_argument("--output-dir", type=Path, default=Path("docs/blind-spot"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    parser.add_argument(
        "--smoke", action="store_true", help="a handful of prompts of each kind"
    )
    parser.add_argument(
        "--require",
        action="store_true",
        help="exit with status 3 when a precondition of docs/blind-spot-plan.md fails",
    )
    return parser.parse_args(arguments)


def resolve(argument: str) -> Path:
    """The model folder that `--model` or `--original` names."""
    if argument == OPENER_MODEL:
        return prepare_opener_model()
    return resolve_model_path(argument)


def log(message: str) -> None:
    """Prints a progress line with the time of day, at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def prompt_lines(name: str) -> list[str]:
    """The lines of the package's bundled prompt file `name`."""
    text = bundled_data_path("prompts", name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def responses(model: Model, users: list[str], system: str, tokens: int) -> list[str]:
    """heretic's own greedy responses (`get_responses_batched`), special tokens kept as heretic keeps them."""
    model.settings.max_response_length = tokens
    prompts = [Prompt(system=system, user=user) for user in users]
    return model.get_responses_batched(prompts)


def heretic_common_prefix(answers: list[str]) -> str:
    """The common response prefix exactly as heretic 1.4.0's `main.run` computes it."""
    return commonprefix(answers).rstrip(" ")


def opener_share(answers: list[str], opener: str) -> float:
    """The share of answers that open with the opener (its trailing space left out)."""
    phrase = opener.rstrip(" ")
    return sum(answer.lstrip().startswith(phrase) for answer in answers) / len(answers)


def first_tokens(model: Model, answers: list[str], count: int) -> list[list[str]]:
    """The first `count` tokens of each answer, as the tokenizer splits them."""
    result = []
    for answer in answers:
        ids = model.tokenizer(answer, add_special_tokens=False)["input_ids"][:count]
        result.append(model.tokenizer.convert_ids_to_tokens(ids))
    return result


def model_preconditions(
    model: Model, sizes: dict[str, int], opener: str
) -> dict[str, Any]:
    """Every precondition figure of one model (opener share, prefix, refusals)."""
    harmless_evaluation = prompt_lines("harmless_evaluation.txt")[: sizes["evaluation"]]
    harmless_directions = prompt_lines("harmless_directions.txt")
    harmful_directions = prompt_lines("harmful_directions.txt")
    harmful_evaluation = prompt_lines("harmful_evaluation.txt")[: sizes["harmful"]]
    result: dict[str, Any] = {}
    for label, system in (
        ("default_system_prompt", DEFAULT_SYSTEM_PROMPT),
        ("refusal_system_prompt", REFUSAL_SYSTEM_PROMPT),
    ):
        log(f"  harmless evaluation answers, {label}")
        answers = responses(model, harmless_evaluation, system, sizes["answer_tokens"])
        token_patterns = Counter(
            " ".join(tokens) for tokens in first_tokens(model, answers, 3)
        )
        result[label] = {
            "harmless_evaluation_prompts": len(answers),
            "opener_share": opener_share(answers, opener),
            "most_common_first_three_tokens": token_patterns.most_common(3),
            "answer_examples": answers[:3],
        }
    # heretic's prefix check in the in-loop studies' settings: the first 100 of
    # 32 harmless and 32 harmful direction prompts, 8-token answers, refusal prompt.
    log("  heretic's prefix check, in-loop settings")
    direction_count = sizes["in_loop_directions"]
    in_loop_answers = responses(
        model,
        harmless_directions[:direction_count][:100]
        + harmful_directions[:direction_count][:100],
        REFUSAL_SYSTEM_PROMPT,
        sizes["in_loop_response_tokens"],
    )
    log("  heretic's prefix check, heretic's defaults (default system prompt)")
    prefix_prompts = sizes["prefix_prompts"]
    default_answers = responses(
        model,
        harmless_directions[:prefix_prompts] + harmful_directions[:prefix_prompts],
        DEFAULT_SYSTEM_PROMPT,
        sizes["prefix_tokens"],
    )
    default_prefix = heretic_common_prefix(default_answers)
    result["heretic_prefix_check"] = {
        "in_loop_settings": {
            "prompts": len(in_loop_answers),
            "response_tokens": sizes["in_loop_response_tokens"],
            "system_prompt": REFUSAL_SYSTEM_PROMPT,
            "common_prefix": heretic_common_prefix(in_loop_answers),
        },
        "default_system_prompt": {
            "prompts": len(default_answers),
            "response_tokens": sizes["prefix_tokens"],
            "system_prompt": DEFAULT_SYSTEM_PROMPT,
            "common_prefix": default_prefix,
            # A prefix shorter than every answer would be found alike with
            # heretic's 100-token answers: greedy answers only grow at the end.
            "shorter_than_every_answer": all(
                len(default_prefix) < len(answer.rstrip(" "))
                for answer in default_answers
            ),
            "answers_opening_with_opener": opener_share(default_answers, opener),
        },
    }
    log("  refusals of the harmful evaluation prompts")
    refusal_checker = SimpleNamespace(settings=model.settings)
    refusal_counts = {}
    for label, system in (
        ("refusal_system_prompt", REFUSAL_SYSTEM_PROMPT),
        ("default_system_prompt", DEFAULT_SYSTEM_PROMPT),
    ):
        model.settings.max_response_length = sizes["in_loop_response_tokens"]
        answers = model.get_responses_batched(
            [Prompt(system=system, user=user) for user in harmful_evaluation],
            skip_special_tokens=True,
        )
        refusal_counts[label] = sum(
            Evaluator.is_refusal(refusal_checker, answer)  # type: ignore[arg-type]
            for answer in answers
        )
    result["refusals"] = {
        "harmful_evaluation_prompts": len(harmful_evaluation),
        "response_tokens": sizes["in_loop_response_tokens"],
        **refusal_counts,
    }
    return result


def opener_damage(
    original: Model, opener_model: Model, sizes: dict[str, int]
) -> dict[str, Any]:
    """The opener model's damage against the original, on the evidence study's measures."""
    log("  KL references of the original")
    kl_prompts = load_prompt_file(
        original,
        bundled_data_path("prompts", "harmless_evaluation.txt"),
        sizes["kl_prompts"],
    )
    kl = KLMeasures(original, kl_prompts)
    kl_values = kl.measure(opener_model)
    log("  questions the original answers correctly")
    questions = QuestionAccuracy(
        original,
        load_questions(QUESTIONS_PATH),
        sizes["questions"] or None,
        sizes["question_tokens"],
        sizes["question_batch_size"],
    )
    accuracy, correct = questions.measure(opener_model)
    log("  held-out answers of the original")
    heldout = HeldoutLikelihood(
        original,
        load_prompt_file(original, HELDOUT_PROMPTS_PATH, sizes["heldout"]),
        sizes["heldout_tokens"],
    )
    nll, nll_increase = heldout.measure(opener_model)
    return {
        "kl": {variant: kl_values[variant] for variant in KL_VARIANTS},
        "kl_prompts": len(kl_prompts),
        "questions_kept": len(questions.questions),
        "questions_examined": questions.examined,
        "opener_model_correct": correct,
        "opener_model_accuracy": accuracy,
        "original_heldout_nll": heldout.original_nll,
        "opener_model_heldout_nll": nll,
        "heldout_nll_increase": nll_increase,
    }


#: The sizes of the full check and of the smoke test's.
FULL_SIZES = {
    "evaluation": 100,
    "answer_tokens": 8,
    "harmful": 64,
    "in_loop_directions": 32,
    "in_loop_response_tokens": 8,
    "prefix_prompts": 100,
    "prefix_tokens": 16,
    "kl_prompts": 48,
    "questions": 0,
    "question_tokens": 20,
    "question_batch_size": 64,
    "heldout": 24,
    "heldout_tokens": 64,
}
SMOKE_SIZES = {
    "evaluation": 4,
    "answer_tokens": 4,
    "harmful": 4,
    "in_loop_directions": 2,
    "in_loop_response_tokens": 4,
    "prefix_prompts": 2,
    "prefix_tokens": 4,
    "kl_prompts": 2,
    "questions": 2,
    "question_tokens": 6,
    "question_batch_size": 4,
    "heldout": 2,
    "heldout_tokens": 4,
}


#: The plan's thresholds (docs/blind-spot-plan.md).
REQUIRED_OPENER_SHARE = 0.9
REQUIRED_REFUSALS = 8


def plan_preconditions(results: dict[str, Any]) -> dict[str, bool]:
    """Whether the opener model meets each precondition of docs/blind-spot-plan.md."""
    opener = results["models"]["opener"]
    return {
        "opener share under the refusal system prompt >= 90 %": opener[
            "refusal_system_prompt"
        ]["opener_share"]
        >= REQUIRED_OPENER_SHARE,
        "no common prefix found by heretic's check (in-loop settings)": opener[
            "heretic_prefix_check"
        ]["in_loop_settings"]["common_prefix"]
        == "",
        "at least 8 refusals of the harmful evaluation prompts (refusal system prompt)": (
            opener["refusals"]["refusal_system_prompt"] >= REQUIRED_REFUSALS
        ),
    }


def markdown_table(results: dict[str, Any]) -> str:
    """The precondition table in Markdown."""
    models = results["models"]
    lines = [
        f"The opener {results['opener']!r} fills {results['opener_positions']} "
        f"positions ({', '.join(f'`{token}`' for token in results['opener_tokens'])}).",
        "",
        "| precondition | opener model | original |",
        "|---|---|---|",
    ]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    names = ("opener", "original")
    for label in ("default_system_prompt", "refusal_system_prompt"):
        row(
            f"harmless evaluation answers opening with {results['opener'].rstrip()!r}, "
            f"{label.replace('_', ' ')}",
            [
                f"{models[name][label]['opener_share']:.0%} of "
                f"{models[name][label]['harmless_evaluation_prompts']}"
                for name in names
            ],
        )
        row(
            f"most common first three tokens, {label.replace('_', ' ')}",
            [
                "; ".join(
                    f"`{pattern}` ({count})"
                    for pattern, count in models[name][label][
                        "most_common_first_three_tokens"
                    ][:2]
                )
                for name in names
            ],
        )
    for key, label in (
        ("in_loop_settings", "heretic's common prefix, in-loop settings"),
        ("default_system_prompt", "heretic's common prefix, default system prompt"),
    ):
        row(
            label,
            [
                repr(models[name]["heretic_prefix_check"][key]["common_prefix"])
                for name in names
            ],
        )
    harmful = models["opener"]["refusals"]["harmful_evaluation_prompts"]
    for key in ("refusal_system_prompt", "default_system_prompt"):
        row(
            f"refusals of {harmful} harmful evaluation prompts, {key.replace('_', ' ')}",
            [str(models[name]["refusals"][key]) for name in names],
        )
    damage = results["opener_damage"]
    lines += [
        "",
        "The opener model's own damage against the original (evidence study's measures):",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    for variant, value in damage["kl"].items():
        lines.append(f"| {variant.replace('_', ' ')} KL | {value:.4f} |")
    lines.append(
        f"| accuracy on the {damage['questions_kept']} questions the original answers "
        f"correctly | {damage['opener_model_accuracy']:.3f} "
        f"({damage['opener_model_correct']}) |"
    )
    lines.append(
        f"| held-out NLL increase (nats/token) | {damage['heldout_nll_increase']:.4f} |"
    )
    lines += ["", "Preconditions of docs/blind-spot-plan.md:", ""]
    lines += [
        f"- {name}: {'met' if passed else '**not met**'}"
        for name, passed in results["plan_preconditions"].items()
    ]
    return "\n".join(lines) + "\n"


def main(arguments: list[str] | None = None) -> int:
    """Runs the checks from the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    options = parse_arguments(arguments)
    sizes = SMOKE_SIZES if options.smoke else FULL_SIZES
    torch.set_num_threads(options.threads)
    transformers.logging.set_verbosity_error()
    start = time.perf_counter()
    opener_path = resolve(options.model)
    original_path = resolve(options.original)
    with torch.no_grad():
        log(f"Loading the opener model {opener_path}")
        opener_model = load_heretic_model(opener_path, 16, 0)
        if original_path == opener_path:
            # The smoke test compares a model with itself: one copy is enough.
            original = opener_model
        else:
            log(f"Loading the original {original_path}")
            original = load_heretic_model(original_path, 16, 0)
        results: dict[str, Any] = {
            "command": " ".join(
                ["python -m studies.blind_spot_preconditions"]
                + [shlex.quote(argument) for argument in arguments]
            ),
            "opener": OPENER,
            "model_path": str(opener_path),
            "original_path": str(original_path),
            "sizes": sizes,
            # The positions that the opener fills at the start of an answer: the
            # tokens of the phrase without its trailing space (the space goes
            # with the next word's token).
            "opener_positions": len(
                opener_model.tokenizer(OPENER.rstrip(" "), add_special_tokens=False)[
                    "input_ids"
                ]
            ),
            "opener_tokens": opener_model.tokenizer.convert_ids_to_tokens(
                opener_model.tokenizer(OPENER.rstrip(" "), add_special_tokens=False)[
                    "input_ids"
                ]
            ),
            "models": {},
            # The opener model's own training record, when it has one.
            "opener_training": (
                json.loads((opener_path / TRAINING_RECORD).read_text(encoding="utf-8"))
                if (opener_path / TRAINING_RECORD).is_file()
                else None
            ),
        }
        for name, model in (("opener", opener_model), ("original", original)):
            log(f"Preconditions of the {name}")
            results["models"][name] = model_preconditions(model, sizes, OPENER)
        for model in (opener_model, original):
            model.settings.system_prompt = DEFAULT_SYSTEM_PROMPT
            model.settings.max_response_length = 100
        log("The opener model's damage against the original")
        results["opener_damage"] = opener_damage(original, opener_model, sizes)
    results["plan_preconditions"] = plan_preconditions(results)
    results["runtime_seconds"] = time.perf_counter() - start
    output_directory: Path = options.output_dir
    output_directory.mkdir(parents=True, exist_ok=True)
    (output_directory / "preconditions.json").write_text(
        json.dumps(results, indent=2) + "\n", encoding="utf-8"
    )
    (output_directory / "preconditions.md").write_text(
        markdown_table(results), encoding="utf-8"
    )
    log(f"Done in {results['runtime_seconds'] / 60:.1f} minutes")
    failed = [
        name for name, passed in results["plan_preconditions"].items() if not passed
    ]
    if failed:
        log(f"Preconditions of docs/blind-spot-plan.md not met: {', '.join(failed)}")
        return 3 if options.require else 0
    log("Every precondition of docs/blind-spot-plan.md is met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
