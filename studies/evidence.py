# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Evidence: does teacher-forced KL see damage that first-token KL misses?

Usage:

    python -m studies.evidence [--model smollm2|PATH] [--abliterations 40] [--seed 0]
        [--prompts 48] [--questions N] [--heldout 24] [--output-dir docs/evidence]
        [--state DIR] [--smoke]

The study loads the model with heretic-llm's own `Model`, computes heretic's
refusal directions from the bundled harmless/harmful direction prompts,
samples `--abliterations` parameter sets the way heretic's random startup
phase samples them (`abliteration_sampling.py`) and applies each through
`Model.abliterate`. For the original and every abliterated model it measures
first-token KL (heretic's way), teacher-forced KL at N = 3, 8, 16, free-running
KL at N = 3, 8 (`kl_measures.py`), and two measures of damage that do not use
KL: accuracy on questions the original answers correctly, and the increase of
the held-out NLL of the original's own answers (`damage_measures.py`). It then
reports Spearman correlations with bootstrap intervals (`evidence_analysis.py`),
and writes JSON, CSV, a Markdown summary and scatter plots into `--output-dir`.

`--state DIR` makes the study resumable: every measured model is appended to
`DIR/models.jsonl` as soon as it is measured, and a later run with the same
options measures only the models missing there. The original's references
(kept questions, held-out NLL, KL continuations) are recorded in
`DIR/setup.json`, and a run whose references differ stops with an error
rather than mixing measurements of different set-ups.

`--smoke` runs a tiny version (2 abliterations, a handful of prompts) that also
scores N = 3 with a separate engine (slicing the N = 16 pass must agree) and
first-token KL with heretic's own `get_logprobs_batched` (the shared first
generation step must agree); CI runs it (`tests/test_evidence_smoke.py`).
"""

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from os.path import commonprefix
from pathlib import Path
from typing import Any

import torch
import transformers
from heretic.model import Model
from heretic.utils import set_seed

from studies.abliteration_sampling import (
    SampledAbliteration,
    sample_abliterations,
)
from studies.damage_measures import (
    HELDOUT_PROMPTS_PATH,
    QUESTIONS_PATH,
    HeldoutLikelihood,
    QuestionAccuracy,
    load_questions,
)
from studies.evidence_analysis import analyze
from studies.evidence_plots import write_plots
from studies.evidence_report import write_results
from studies.kl_measures import (
    FREE_RUNNING_TOKENS,
    TEACHER_FORCED_TOKENS,
    KLMeasures,
)
from studies.study_options import add_size_options, fill_sizes, positive
from studies.study_setup import (
    SMOLLM2,
    load_bundled_prompts,
    load_heretic_model,
    load_prompt_file,
    refusal_directions,
    resolve_model_path,
)


@dataclass(frozen=True)
class StudySize:
    """The sizes of one study; `FULL` and `SMOKE` are the two presets."""

    abliterations: int
    prompts: int
    questions: int | None
    question_tokens: int
    heldout: int
    heldout_tokens: int
    direction_prompts: int
    bootstrap: int
    batch_size: int
    question_batch_size: int


#: The full study on SmolLM2, sized for about an hour on 2 shared CPU cores.
FULL = StudySize(
    abliterations=40,
    prompts=48,
    questions=None,
    question_tokens=20,
    heldout=24,
    heldout_tokens=64,
    direction_prompts=128,
    bootstrap=2000,
    batch_size=16,
    question_batch_size=64,
)

#: The smoke test's study: every step runs, on a handful of inputs.
SMOKE = StudySize(
    abliterations=2,
    prompts=4,
    questions=4,
    question_tokens=8,
    heldout=2,
    heldout_tokens=8,
    direction_prompts=4,
    bootstrap=200,
    batch_size=4,
    question_batch_size=4,
)


def parse_arguments(arguments: list[str]) -> argparse.Namespace:
    """Parses the command line; sizes left out come from the full or the smoke preset."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.evidence",
        description="Does teacher-forced KL see damage that first-token KL misses?",
    )
    parser.add_argument("--model", default=SMOLLM2, help="'smollm2' or a model folder")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of sampling and bootstrap"
    )
    add_size_options(
        parser,
        FULL,
        {
            "abliterations": "abliterated models",
            "prompts": "KL prompts",
            "questions": "questions kept at most, of those the original answers correctly",
            "question_tokens": "tokens per answer",
            "heldout": "held-out prompts",
            "heldout_tokens": "tokens per held-out answer",
            "direction_prompts": "harmless and harmful direction prompts",
            "bootstrap": "bootstrap resamples",
            "batch_size": "prompts per batch",
            "question_batch_size": "questions per generation batch",
        },
    )
    parser.add_argument(
        "--threads",
        type=positive,
        default=1,
        help="torch CPU threads (1: on a shared 2-core machine, 2 threads ran 10x slower)",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("docs/evidence"))
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="folder of the resumable state: measured models are kept there and "
        "not measured again (default: none, the study runs in one go)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny, fast version of the study"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also score N=3 with a separate engine and first-token KL with heretic's "
        "get_logprobs (on with --smoke)",
    )
    options = parser.parse_args(arguments)
    fill_sizes(options, FULL, SMOKE)
    options.verify = options.verify or options.smoke
    return options


def log(message: str) -> None:
    """Prints a progress line with the time of day, at once (the full run logs to a file)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def measure_model(
    model: Model,
    name: str,
    abliteration: SampledAbliteration | None,
    kl: KLMeasures,
    questions: QuestionAccuracy,
    heldout: HeldoutLikelihood,
) -> dict[str, Any]:
    """Every KL variant and damage measure of the model as it is now."""
    start = time.perf_counter()
    kl_values = kl.measure(model)
    after_kl = time.perf_counter()
    accuracy, correct = questions.measure(model)
    after_questions = time.perf_counter()
    nll, nll_increase = heldout.measure(model)
    end = time.perf_counter()
    return {
        "teacher_forced_by_position": list(kl.position_means),
        "name": name,
        "is_original": abliteration is None,
        "parameters": {} if abliteration is None else abliteration.record(),
        "kl": kl_values,
        "accuracy": accuracy,
        "correct_answers": correct,
        "heldout_nll": nll,
        "nll_increase": nll_increase,
        "seconds": end - start,
        "seconds_by_measure": {
            **kl.seconds,
            "questions": after_questions - after_kl,
            "heldout_nll": end - after_questions,
        },
    }


#: The relative difference up to which the original's held-out NLL counts as
#: the recorded one: float32 sums over about 1,500 tokens, whose order can
#: change with the number of threads, agree to about 1e-6.
SETUP_NLL_TOLERANCE = 1e-5


class StudyState:
    """
    The resumable state of one study in a folder: `setup.json` (the original's
    references) and `models.jsonl` (one measured model per line, appended and
    flushed to disk as soon as it is measured).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.setup_path = directory / "setup.json"
        self.models_path = directory / "models.jsonl"

    def check_setup(self, setup: dict[str, Any]) -> None:
        """Records the set-up, or checks it against the recorded one and stops on a difference."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.setup_path.is_file():
            temporary = self.setup_path.with_suffix(".json.partial")
            temporary.write_text(json.dumps(setup, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, self.setup_path)
            return
        recorded = json.loads(self.setup_path.read_text(encoding="utf-8"))
        differences = [
            key
            for key in ("kept_ids", "kl_reference_examples", "configuration")
            if recorded.get(key) != setup.get(key)
        ]
        if not math.isclose(
            recorded["original_heldout_nll"],
            setup["original_heldout_nll"],
            rel_tol=SETUP_NLL_TOLERANCE,
        ):
            differences.append("original_heldout_nll")
        if differences:
            raise RuntimeError(
                f"--state {self.directory}: this run's {', '.join(differences)} differ "
                "from the recorded ones (another model, other sizes or another "
                "environment); use another --state folder."
            )

    def records(self) -> dict[str, dict[str, Any]]:
        """The measured models recorded so far, by name (a torn last line is ignored)."""
        if not self.models_path.is_file():
            return {}
        records: dict[str, dict[str, Any]] = {}
        for line in self.models_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record["name"]] = record
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Appends one measured model and flushes it to disk."""
        with self.models_path.open("a", encoding="utf-8") as file:
            # A line torn by an earlier kill is ended first, so that it stays alone.
            if file.tell() > 0:
                with self.models_path.open("rb") as reader:
                    reader.seek(-1, os.SEEK_END)
                    if reader.read(1) != b"\n":
                        file.write("\n")
            file.write(json.dumps(record) + "\n")
            file.flush()
            os.fsync(file.fileno())


def run_study(
    options: argparse.Namespace,
    command: str,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """
    Runs the whole study and returns its results (see `evidence_report.py`);
    `on_record` is called with every model newly measured (after it is in the state).
    """
    start = time.perf_counter()
    model_path = resolve_model_path(options.model)
    set_seed(options.seed)
    log(f"Loading {model_path} with heretic")
    model = load_heretic_model(model_path, options.batch_size, options.seed)

    log(f"Refusal directions from {options.direction_prompts} prompts of each kind")
    directions = refusal_directions(
        model,
        load_bundled_prompts(
            model, "harmless_directions.txt", options.direction_prompts
        ),
        load_bundled_prompts(
            model, "harmful_directions.txt", options.direction_prompts
        ),
    )

    log(f"KL references on {options.prompts} prompts")
    kl_prompts = load_bundled_prompts(model, "harmless_evaluation.txt", options.prompts)
    kl = KLMeasures(model, kl_prompts, verify=options.verify, log=log)

    log("Keeping the questions that the original answers correctly")
    all_questions = load_questions(QUESTIONS_PATH)
    questions = QuestionAccuracy(
        model,
        all_questions,
        options.questions,
        options.question_tokens,
        options.question_batch_size,
    )
    log(f"  {len(questions.questions)} kept of {questions.examined} examined")

    log(
        f"Held-out answers: {options.heldout} prompts x {options.heldout_tokens} tokens"
    )
    heldout_prompts = load_prompt_file(model, HELDOUT_PROMPTS_PATH, options.heldout)
    heldout = HeldoutLikelihood(model, heldout_prompts, options.heldout_tokens)

    layers = len(model.get_layers())
    components = model.get_abliterable_components()
    abliterations = sample_abliterations(
        options.abliterations, options.seed, layers - 1, components
    )
    setup_seconds = time.perf_counter() - start

    state = None if options.state is None else StudyState(options.state)
    recorded: dict[str, dict[str, Any]] = {}
    if state is not None:
        state.check_setup(
            {
                "configuration": {
                    "model_path": str(model_path),
                    "seed": options.seed,
                    "kl_prompts": options.prompts,
                    "question_tokens": options.question_tokens,
                    "heldout_prompts": options.heldout,
                    "heldout_tokens": options.heldout_tokens,
                    "direction_prompts": options.direction_prompts,
                },
                "kept_ids": [question.identifier for question in questions.questions],
                "original_heldout_nll": heldout.original_nll,
                "kl_reference_examples": kl.reference_continuations(model)[:5],
            }
        )
        recorded = state.records()
        log(f"{len(recorded)} models already measured in {options.state}")

    records = []
    reused = 0
    for index, abliteration in enumerate([None, *abliterations]):
        name = "original" if abliteration is None else f"abliteration-{index:02d}"
        parameters = {} if abliteration is None else abliteration.record()
        previous = recorded.get(name)
        if previous is not None and previous["parameters"] == parameters:
            records.append(previous)
            reused += 1
            continue
        model.reset_model()
        if abliteration is not None:
            model.abliterate(
                directions, abliteration.direction_index, abliteration.parameters
            )
        record = measure_model(model, name, abliteration, kl, questions, heldout)
        records.append(record)
        if state is not None:
            state.append(record)
        if on_record is not None:
            on_record(record)
        log(
            f"{name}: first-token KL {record['kl']['first_token']:.4f}, "
            f"TF-16 {record['kl']['teacher_forced_16']:.4f}, "
            f"free-8 {record['kl']['free_running_8']:.4f}, accuracy {record['accuracy']:.3f}, "
            f"NLL increase {record['nll_increase']:.4f} ({record['seconds']:.1f} s)"
        )
    model.reset_model()

    analysis = analyze(records, options.bootstrap, options.seed)
    question_responses = questions.original_responses
    return {
        "command": command,
        "configuration": {
            "model": str(options.model),
            "model_path": str(model_path),
            "abliterations": options.abliterations,
            "seed": options.seed,
            "kl_prompts": options.prompts,
            "questions_requested": options.questions,
            "question_tokens": options.question_tokens,
            "heldout_prompts": options.heldout,
            "heldout_tokens": options.heldout_tokens,
            "direction_prompts": options.direction_prompts,
            "bootstrap_resamples": options.bootstrap,
            "batch_size": options.batch_size,
            "question_batch_size": options.question_batch_size,
            "teacher_forced_tokens": list(TEACHER_FORCED_TOKENS),
            "free_running_tokens": list(FREE_RUNNING_TOKENS),
            "parameter_sampling": "optuna.samplers.RandomSampler (heretic's TPE startup phase)",
            "heretic_settings": {
                "system_prompt": model.settings.system_prompt,
                "row_normalization": str(model.settings.row_normalization),
                "orthogonalize_direction": model.settings.orthogonalize_direction,
                "winsorization_quantile": model.settings.winsorization_quantile,
                "response_prefix": model.settings.response_prefix,
                "layers": layers,
                "components": components,
            },
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "heretic_llm": version("heretic-llm"),
            "optuna": version("optuna"),
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        "runtime_seconds": time.perf_counter() - start,
        "setup_seconds": setup_seconds,
        "models_taken_from_state": reused,
        "measurement_seconds_all_models": sum(record["seconds"] for record in records),
        "questions": {
            "examined": questions.examined,
            "kept": len(questions.questions),
            "kept_ids": [question.identifier for question in questions.questions],
            "kept_by_kind": {
                kind: sum(question.kind == kind for question in questions.questions)
                for kind in sorted({question.kind for question in all_questions})
            },
        },
        "original": {
            "heldout_nll": heldout.original_nll,
            "kl_reference_examples": kl.reference_continuations(model)[:5],
            "question_response_examples": question_responses[:5],
            "heldout_answer_examples": heldout.answers(model)[:3],
            # heretic would append a common response prefix of the original's
            # answers to every prompt; an empty one means it would find none here.
            "common_response_prefix": commonprefix(
                [*kl.reference_continuations(model), *question_responses]
            ),
        },
        "models": records,
        "analysis": analysis,
    }


def main(
    arguments: list[str] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Runs the study from the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    options = parse_arguments(arguments)
    quoted = [shlex.quote(argument) for argument in arguments]
    command = " ".join(["python -m studies.evidence", *quoted])
    threads = torch.get_num_threads()
    verbosity = transformers.logging.get_verbosity()
    torch.set_num_threads(options.threads)
    transformers.logging.set_verbosity_error()
    try:
        with torch.no_grad():
            results = run_study(options, command, on_record)
        output_directory: Path = options.output_dir
        paths = write_results(results, output_directory)
        paths += write_plots(results["models"], results["analysis"], output_directory)
    finally:
        torch.set_num_threads(threads)
        transformers.logging.set_verbosity(verbosity)
    log(f"Done in {results['runtime_seconds'] / 60:.1f} minutes; wrote:")
    for path in paths:
        log(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
