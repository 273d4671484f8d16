# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
`heretic-kl compare ORIGINAL CANDIDATE`: a damage report of one model against its original.

The original model greedily answers every prompt (through heretic's own prompt
formatting); the candidate is then teacher-forced on those answers by the same
engine that scores heretic's trials, and the report of `report.py` is printed,
and optionally written as JSON and plotted. Only one model is in memory at a
time, except for an adapter candidate, which is applied to the original itself.
"""

import argparse
import json
import math
import os
from importlib.resources import files
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

from ...console import console
from ...console import print as console_print
from ...errors import RunError, UsageError, describe_validation_error, one_line
from ...metric.engine import describe_prompt
from ...prompts import load_prompt_set, prompts_table
from ...report import ComparisonReport, build_report
from ...settings import PromptSpecification, validate_setting
from ..model_sources import resolve_source
from .document import decode_references, report_document
from .models import (
    ComparisonPromptModel,
    adapter_base_matches,
    adapter_base_name,
    apply_adapter,
    check_output_widths,
    check_tokenizers,
    check_vocabulary_sizes,
    load_config,
    load_model,
    load_tokenizer,
    model_device,
    output_width,
    release_memory,
)
from .plot import PlotUnavailableError, require_matplotlib, write_plot
from .render import render_report

#: The bundled prompts used when `--prompts` is not given.
DEFAULT_PROMPTS = "data/prompts/harmless_evaluation.txt"

#: The default number of reference tokens per prompt: more than the scorer's 3,
#: since a report is computed once and shows how the damage develops.
DEFAULT_KL_TOKENS = 16

#: The default number of prompts per forward pass.
DEFAULT_BATCH_SIZE = 8

#: The dtypes a model can be loaded in ("auto": the dtype it was saved in).
DTYPES = ("auto", "float32", "bfloat16", "float16")


class CompareArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors become one-line `UsageError`s."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"compare: {message}.")


def default_prompts_path() -> str:
    """The path of the bundled default prompt file."""
    return str(files("heretic_teacher_forced_kl").joinpath(DEFAULT_PROMPTS))


def default_system_prompt() -> str:
    """heretic's own default system prompt."""
    from heretic.config import Settings

    return str(Settings.model_fields["system_prompt"].default)


def build_parser() -> CompareArgumentParser:
    """The parser of `heretic-kl compare`."""
    parser = CompareArgumentParser(
        prog="heretic-kl compare",
        allow_abbrev=False,
        description=(
            "Reports how far CANDIDATE's next-token distributions are from ORIGINAL's, "
            "teacher-forced on ORIGINAL's own greedy answers: mean KL divergence with its "
            "standard error, percentiles, KL by position, first-token KL, top-1 agreement, "
            "the change in the reference's log-likelihood and KL by the original's confidence."
        ),
    )
    parser.add_argument(
        "original",
        metavar="ORIGINAL",
        help="The original model: a folder or a Hugging Face model ID.",
    )
    parser.add_argument(
        "candidate",
        metavar="CANDIDATE",
        help=(
            "The model to compare: a saved model folder, a Hugging Face model ID, or a LoRA "
            "adapter folder (adapter_config.json) as heretic exports it, applied to ORIGINAL."
        ),
    )
    parser.add_argument(
        "--prompts",
        metavar="SPEC",
        help=(
            "The prompts: a .txt file (one prompt per line), a dataset ID or folder "
            "(split test[:100], column text), or a JSON object "
            "with the fields of heretic's DatasetSpecification. Default: the bundled "
            "harmless_evaluation.txt (100 prompts)."
        ),
    )
    parser.add_argument(
        "--kl-tokens",
        metavar="N",
        type=int,
        default=DEFAULT_KL_TOKENS,
        help=f"Reference tokens generated and compared per prompt (default {DEFAULT_KL_TOKENS}).",
    )
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=(
            f"Prompts per forward pass (default {DEFAULT_BATCH_SIZE}); a batch that runs "
            "out of memory is split."
        ),
    )
    parser.add_argument(
        "--system-prompt",
        metavar="TEXT",
        help="The system prompt (default: heretic's default system prompt).",
    )
    parser.add_argument(
        "--device",
        metavar="DEVICE_MAP",
        default="auto",
        help=(
            'Where to load the models, as a device map: "auto" (default), "cpu", "cuda", '
            '"cuda:1", ...'
        ),
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help='The dtype to load both models in (default "auto": the dtype each was saved in).',
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Allow models with custom code from their repository.",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        type=Path,
        help="Write every number of the report to this JSON file.",
    )
    parser.add_argument(
        "--plot",
        metavar="PATH",
        type=Path,
        help="Write a PNG of the mean KL divergence by position (needs the extra `plot`).",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="No progress (bars on a terminal, plain lines elsewhere).",
    )
    return parser


def check_options(options: argparse.Namespace) -> None:
    """Checks every option that can be checked before anything is loaded."""
    validate_setting("kl_tokens", options.kl_tokens, "--kl-tokens")
    if options.batch_size < 1:
        raise UsageError(f"--batch-size: must be at least 1, got {options.batch_size}.")
    for flag in ("json", "plot"):
        path = getattr(options, flag)
        if path is not None:
            path = path.expanduser()
            setattr(options, flag, path)
            check_output_path(path, f"--{flag}")
    if (
        options.json is not None
        and options.plot is not None
        and options.json.resolve() == options.plot.resolve()
    ):
        raise UsageError(
            f"--json and --plot: both name {str(options.json)!r}; give two files."
        )
    if options.plot is not None:
        try:
            require_matplotlib()
        except PlotUnavailableError as error:
            raise UsageError(str(error)) from None


def check_output_path(path: Path, flag: str) -> None:
    """
    Stops with a one-line error when `path` cannot be written: a folder, a file
    in a folder that does not exist, or a place without write permission.
    """
    if path.is_dir():
        raise UsageError(
            f"{flag}: {str(path)!r} is a folder; give a file name, such as "
            f"{str(path / ('report.json' if flag == '--json' else 'report.png'))!r}."
        )
    folder = path.resolve().parent
    if not folder.is_dir():
        raise UsageError(
            f"{flag}: the folder of {str(path)!r} does not exist; create it first."
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag}: {str(path)!r} exists and is not writable.")
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"{flag}: cannot create files in {str(folder)!r} (no permission); "
            "choose another folder."
        )


def prompt_specification(value: str | None) -> Any:
    """Turns the value of `--prompts` into heretic's `DatasetSpecification`."""
    from pydantic import ValidationError

    if value is None:
        return PromptSpecification(dataset=default_prompts_path())
    fields = prompts_table(value, "--prompts")
    try:
        return PromptSpecification.model_validate(fields)
    except ValidationError as error:
        raise UsageError(
            describe_validation_error(
                error,
                prefix="--prompts: ",
                suffix=(
                    "; give the fields of heretic's DatasetSpecification (dataset, "
                    "split, column, prefix, suffix, system_prompt)."
                ),
            )
        ) from None


def load_comparison_prompts(specification: Any, system_prompt: str) -> list[Any]:
    """Loads the prompts with heretic's own loader, with one-line errors."""
    from heretic.utils import load_prompts

    settings = SimpleNamespace(system_prompt=system_prompt)
    return load_prompt_set(
        lambda specification: load_prompts(settings, specification),  # type: ignore[arg-type]
        specification,
        "--prompts",
    )


def run(options: argparse.Namespace) -> None:
    """Loads the models, measures, and prints and writes the report."""
    from ...console import print_item
    from ...metric.engine import TeacherForcedKLEngine
    from .progress import ComparisonProgress

    original = resolve_source(options.original, "ORIGINAL")
    candidate = resolve_source(options.candidate, "CANDIDATE")
    if original.is_adapter:
        raise UsageError(
            f"ORIGINAL: {options.original!r} is a LoRA adapter; give its base model as "
            "ORIGINAL and the adapter as CANDIDATE."
        )

    if options.system_prompt is None:
        options.system_prompt = default_system_prompt()
    specification = prompt_specification(options.prompts)
    prompts = load_comparison_prompts(specification, options.system_prompt)

    original_config = load_config(original, options.trust_remote_code)
    base_name: str | None = None
    if candidate.is_adapter:
        base_name = adapter_base_name(candidate)
        if base_name is not None and not adapter_base_matches(
            base_name, original, original_config
        ):
            console_print(
                f"[yellow]* The adapter names {base_name!r} as its base model, and ORIGINAL is "
                f"{options.original!r}; comparing anyway (a mismatch in shapes stops the run).[/]",
                soft_wrap=True,
            )
    else:
        check_vocabulary_sizes(
            original_config, load_config(candidate, options.trust_remote_code)
        )
    tokenizer = load_tokenizer(original, options.trust_remote_code)
    check_tokenizers(tokenizer, candidate, options.trust_remote_code)

    kind = "LoRA adapter" if candidate.is_adapter else "model"
    console_print(
        f"Comparing ORIGINAL [bold]{options.original}[/] with CANDIDATE {kind} "
        f"[bold]{options.candidate}[/]: [bold]{len(prompts)}[/] prompts, "
        f"[bold]{options.kl_tokens}[/] reference tokens each",
        soft_wrap=True,
    )
    engine = TeacherForcedKLEngine(
        kl_tokens=options.kl_tokens, batch_size=options.batch_size, log=print_item
    )
    console_print(f"* Loading ORIGINAL [bold]{options.original}[/]...")
    original_model = load_model(
        original, options.device, options.dtype, options.trust_remote_code
    )
    dtypes = {"original": str(original_model.dtype).removeprefix("torch.")}
    prompt_model = ComparisonPromptModel(original_model, tokenizer)
    with ComparisonProgress(len(prompts), enabled=not options.quiet) as progress:
        with (
            progress.generation(prompt_model, "Generating the reference"),
            progress.forward_passes(original_model, "Scoring ORIGINAL"),
        ):
            engine.build_reference(prompt_model, prompts)
    original_width = output_width(original_model)
    device = model_device(original_model)
    del prompt_model

    if candidate.is_adapter:
        console_print(
            f"* Applying the adapter [bold]{options.candidate}[/] to ORIGINAL..."
        )
        candidate_model = apply_adapter(original_model, candidate, base_name)
        del original_model
    else:
        # The reference holds everything the report needs from the original model.
        del original_model
        release_memory(device)
        console_print(f"* Loading CANDIDATE [bold]{options.candidate}[/]...")
        candidate_model = load_model(
            candidate, options.device, options.dtype, options.trust_remote_code
        )
        check_output_widths(original_width, candidate_model)
    dtypes["candidate"] = str(candidate_model.dtype).removeprefix("torch.")

    with ComparisonProgress(len(prompts), enabled=not options.quiet) as progress:
        with progress.forward_passes(candidate_model, "Scoring CANDIDATE"):
            measurement = engine.measure(candidate_model, details=True)
    del candidate_model
    release_memory(device)

    report = build_report(measurement)
    references = decode_references(tokenizer, measurement.targets, measurement.counted)
    console.print()
    # Tables keep their layout; lines of text are not wrapped, so that a log
    # file holds each on one line.
    console.print(
        render_report(report, [prompt.user for prompt in prompts], references),
        soft_wrap=True,
    )

    # The report above stands whatever happens to the files: a write that fails
    # is reported with the other problems, in one line, at the end.
    problems = []
    if options.json is not None:
        document = report_document(
            report, options, specification, prompts, references, candidate, dtypes
        )
        try:
            options.json.write_text(
                json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
            console_print(f"* Report written to [bold]{options.json}[/]")
        except OSError as error:
            problems.append(
                f"--json: cannot write {str(options.json)!r} ({one_line(error)})"
            )
    if options.plot is not None:
        try:
            write_plot(
                report, options.plot, f"{options.candidate} against {options.original}"
            )
            console_print(f"* Plot written to [bold]{options.plot}[/]")
        except OSError as error:
            problems.append(
                f"--plot: cannot write {str(options.plot)!r} ({one_line(error)})"
            )
    infinite = infinite_divergence_problem(report, prompts)
    if infinite:
        problems.insert(0, infinite)
    if problems:
        raise RunError("; ".join(problems) + ".")


def infinite_divergence_problem(report: ComparisonReport, prompts: list[Any]) -> str:
    """
    Why CANDIDATE's KL divergence is infinite, in one phrase naming the first
    prompt concerned; "" when it is finite.
    """
    if report.non_finite_positions:
        counts, cause = (
            report.prompt_non_finite_positions,
            f"CANDIDATE's logits are NaN or infinite at {report.non_finite_positions}",
        )
    elif report.infinite_kl_positions:
        counts = [
            sum(math.isinf(value) for value in values)
            for values in report.prompt_kl_by_position
        ]
        cause = (
            "CANDIDATE gives probability 0 to a token that ORIGINAL can produce at "
            f"{report.infinite_kl_positions}"
        )
    else:
        return ""
    first = next(index for index, count in enumerate(counts) if count)
    return (
        f"{cause} of {report.counted_tokens} counted positions, in "
        f"{sum(1 for count in counts if count)} of {report.prompt_count} prompts "
        f"(first: prompt {first + 1}, {describe_prompt(prompts[first])}), so its KL "
        "divergence is +inf, the worst damage"
    )


def compare(arguments: list[str]) -> int:
    """
    Runs `heretic-kl compare` and returns the exit status; bad input raises
    `UsageError`, which the command line reports as one line.
    """
    try:
        options = build_parser().parse_args(arguments)
    except SystemExit as exit_request:
        # `--help` prints the usage and asks to exit.
        return int(exit_request.code or 0)
    check_options(options)
    run(options)
    return 0
