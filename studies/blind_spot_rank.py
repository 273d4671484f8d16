# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The blind-spot rank study: the evidence study (`studies/evidence.py`, its code
unchanged) on the opener model and on the original, resumable, with its state
committed as it comes.

Usage:

    python -m studies.blind_spot_rank --model opener|smollm2
        [--abliterations 60] [--commit] [--smoke] [--output-dir DIR]

The study runs `python -m studies.evidence --model PATH --abliterations 60
--seed 0 --state DIR/state --output-dir DIR` with `DIR` =
`docs/blind-spot/rank-opener` or `docs/blind-spot/rank-original`. Every
measured model is in `DIR/state/models.jsonl` at once; with `--commit`, the
state is committed to the repository's current branch after every model,
and the outputs at the end, so that a run killed at any time loses at most
the model it was measuring. Running the same command again resumes.

The original's state starts from the 40 models of `docs/evidence` (the same
seed draws the same first 40 parameter sets; the recorded set-up is checked
against this run's, so a difference stops the run instead of mixing
measurements). Models 41 to 60 are measured anew.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from studies import evidence
from studies.study_setup import (
    OPENER,
    REPOSITORY_ROOT,
    SMOLLM2,
    commit_paths,
    resolve_model_path,
)

#: The evidence study's results, whose 40 models start the original's state.
EVIDENCE_RESULTS = REPOSITORY_ROOT / "docs" / "evidence" / "results.json"

#: The models this driver knows, by the name of their output folder.
MODELS = ("opener", "original")


def parse_arguments(arguments: list[str]) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.blind_spot_rank",
        description="The evidence study on the opener model or the original, resumable.",
    )
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument(
        "--abliterations", type=int, default=60, help="abliterated models (60)"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="output folder (default: docs/blind-spot/rank-MODEL)",
    )
    parser.add_argument(
        "--commit",
        action="store_true",
        help="commit the state after every model and the outputs at the end",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="the evidence study's smoke size"
    )
    parser.add_argument(
        "--model-path",
        type=Path,
        default=None,
        help="use this model folder instead of building or converting one (for tests)",
    )
    return parser.parse_args(arguments)


def model_path(name: str) -> Path:
    """The folder of the opener model (built when missing) or of the converted SmolLM2."""
    return resolve_model_path(OPENER if name == "opener" else SMOLLM2)


def seed_state_from_evidence(
    results_path: Path, state_directory: Path, path: Path
) -> int:
    """
    Starts an empty state with the models of the evidence study's results (same
    model, seed and sizes); returns how many were taken. An existing state is
    left alone.
    """
    state = evidence.StudyState(state_directory)
    if state.setup_path.exists() or state.models_path.exists():
        return 0
    results: dict[str, Any] = json.loads(results_path.read_text(encoding="utf-8"))
    configuration = results["configuration"]
    if Path(configuration["model_path"]) != path:
        raise RuntimeError(
            f"{results_path} was measured on {configuration['model_path']}, not on "
            f"{path}; it cannot start this state."
        )
    state.check_setup(
        {
            "configuration": {
                "model_path": str(path),
                "seed": configuration["seed"],
                "kl_prompts": configuration["kl_prompts"],
                "question_tokens": configuration["question_tokens"],
                "heldout_prompts": configuration["heldout_prompts"],
                "heldout_tokens": configuration["heldout_tokens"],
                "direction_prompts": configuration["direction_prompts"],
            },
            "kept_ids": results["questions"]["kept_ids"],
            "original_heldout_nll": results["original"]["heldout_nll"],
            "kl_reference_examples": results["original"]["kl_reference_examples"],
        }
    )
    for record in results["models"]:
        state.append(record)
    return len(results["models"])


def main(arguments: list[str] | None = None) -> int:
    """Runs or resumes the rank study of one model; returns the exit status."""
    options = parse_arguments(list(sys.argv[1:] if arguments is None else arguments))
    output_directory: Path = options.output_dir or (
        REPOSITORY_ROOT / "docs" / "blind-spot" / f"rank-{options.model}"
    )
    state_directory = output_directory / "state"
    path = options.model_path or model_path(options.model)
    if options.model == "original" and not options.smoke and options.model_path is None:
        taken = seed_state_from_evidence(EVIDENCE_RESULTS, state_directory, path)
        if taken:
            evidence.log(f"State started with the {taken} models of {EVIDENCE_RESULTS}")
    total = (
        evidence.SMOKE.abliterations if options.smoke else options.abliterations
    ) + 1
    results_path = output_directory / "results.json"
    if results_path.is_file() and not options.smoke:
        finished = json.loads(results_path.read_text(encoding="utf-8"))
        if len(finished["models"]) == total:
            # A finished study is not set up again only to be told so.
            evidence.log(
                f"{results_path} already holds all {total} models; nothing to do"
            )
            return 0

    def on_record(record: dict[str, Any]) -> None:
        """Commits the state after every newly measured model."""
        if options.commit:
            measured = len(evidence.StudyState(state_directory).records())
            commit_paths(
                [state_directory],
                f"Blind-spot rank study ({options.model}): state after {measured} of "
                f"{total} models",
                evidence.log,
            )

    study_arguments = [
        "--model",
        str(path),
        "--seed",
        "0",
        "--state",
        str(state_directory),
        "--output-dir",
        str(output_directory),
    ]
    if options.smoke:
        study_arguments.append("--smoke")
    else:
        study_arguments += ["--abliterations", str(options.abliterations)]
    status = evidence.main(study_arguments, on_record)
    if options.commit and status == 0:
        commit_paths(
            [output_directory],
            f"Blind-spot rank study ({options.model}): all {total} models and the outputs",
            evidence.log,
        )
    return status


if __name__ == "__main__":
    raise SystemExit(main())
