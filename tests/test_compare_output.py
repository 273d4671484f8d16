# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
What `heretic-kl compare` prints and writes: the header, progress off a
terminal, the prompts that diverge most, and output files that cannot be
written (checked before any model loads, and reported in one line when a
write still fails at the end).
"""

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from heretic_teacher_forced_kl.cli.compare import command
from heretic_teacher_forced_kl.cli.compare.progress import ComparisonProgress
from heretic_teacher_forced_kl.cli.main import main as heretic_kl
from heretic_teacher_forced_kl.metric.measurement import KLMeasurement
from heretic_teacher_forced_kl.report import (
    build_report,
    first_top1_differences,
    most_divergent,
)
from tests.test_compare import save_noisy_copy

PROMPTS = [
    "Hi",
    "What is the capital of France?",
    "Tell me a joke about computers.",
    "Write one sentence about the sea.",
    "List three colors.",
    "Name a large animal.",
    "How are you today?",
]
KL_TOKENS = 5


def run_compare(arguments: list[Any]) -> int:
    """Runs `heretic-kl compare` on CPU (with progress) and returns its exit status."""
    return heretic_kl(
        ["compare", *[str(argument) for argument in arguments], "--device", "cpu"]
    )


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line of output of a run that stopped before loading a model."""
    output = capsys.readouterr().out.strip()
    assert "\n" not in output, output
    assert output.startswith("heretic-kl: error: "), output
    return output


@pytest.fixture(scope="module")
def noisy_llama(
    tiny_llama_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny Llama with noise in its MLP output projections."""
    return save_noisy_copy(
        tiny_llama_path, tmp_path_factory.mktemp("noisy"), slice(0, 3), 0.3
    )


# The prompts that diverge most, as numbers.


def test_first_top1_difference_per_prompt() -> None:
    agreement = torch.tensor(
        [[True, False, False], [True, True, True], [True, True, False]]
    )
    counted = torch.tensor(
        [[True, True, True], [True, True, True], [True, True, False]]
    )
    # The third prompt differs only where it is not counted.
    assert first_top1_differences(agreement, counted) == [2, None, None]
    assert first_top1_differences(~agreement, counted) == [1, 1, 1]


def test_most_divergent_prompts_are_ranked_highest_first() -> None:
    means = [0.2, float("inf"), 0.0, 0.5, float("nan"), 0.5, 0.1]
    assert most_divergent(means, 4) == [1, 3, 5, 0]
    assert most_divergent(means, 10) == [1, 3, 5, 0, 6]
    assert most_divergent([0.0, 0.0], 5) == []


def test_report_holds_each_prompts_divergence() -> None:
    measurement = KLMeasurement(
        kl=torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.7, 0.0], [0.0, 0.0, 0.0]]),
        counted=torch.tensor(
            [[True, True, True], [True, True, False], [True, True, True]]
        ),
        weights=torch.ones(3, dtype=torch.float64),
        targets=torch.zeros(3, 3, dtype=torch.long),
        non_finite=torch.zeros(3, 3, dtype=torch.bool),
        current_target_log_probabilities=torch.full((3, 3), -0.5),
        reference_target_log_probabilities=torch.full((3, 3), -0.4),
        top1_agreement=torch.tensor(
            [[True, True, False], [False, True, True], [True, True, True]]
        ),
    )
    report = build_report(measurement, most_divergent_count=5)
    assert report.most_divergent_prompts == [1, 0]
    assert report.prompt_kl_by_position[0] == pytest.approx([0.1, 0.2, 0.3])
    assert report.prompt_kl_by_position[1] == pytest.approx([0.5, 0.7])
    assert report.prompt_first_top1_difference == [3, 1, None]
    assert report.prompt_non_finite_positions == [0, 0, 0]
    assert build_report(measurement, most_divergent_count=1).most_divergent_prompts == [
        1
    ]


# What a run prints and writes.


def test_run_off_a_terminal_prints_progress_and_the_prompts_that_diverge_most(
    tiny_llama_path: Path,
    noisy_llama: Path,
    write_prompt_file: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    json_path = tmp_path / "report.json"
    arguments = ["--prompts", write_prompt_file(PROMPTS), "--kl-tokens", KL_TOKENS]
    arguments += ["--batch-size", 2, "--json", json_path]
    assert run_compare([tiny_llama_path, noisy_llama, *arguments]) == 0
    output = capsys.readouterr().out
    lines = output.splitlines()

    # The header names the models in the order of the command line.
    assert lines[0] == (
        f"Comparing ORIGINAL {tiny_llama_path} with CANDIDATE model {noisy_llama}: "
        f"{len(PROMPTS)} prompts, {KL_TOKENS} reference tokens each"
    )
    # Without a terminal, each step reports its progress in plain lines.
    for step in ("Generating the reference", "Scoring ORIGINAL", "Scoring CANDIDATE"):
        step_lines = [line for line in lines if line.startswith(f"* {step}: ")]
        assert step_lines, output
        assert step_lines[-1].startswith(
            f"* {step}: {len(PROMPTS)}/{len(PROMPTS)} prompts ("
        )
        assert len(step_lines) <= 10

    document = json.loads(json_path.read_text(encoding="utf-8"))
    report = document["report"]
    ranked = report["most_divergent_prompts"]
    assert 1 <= len(ranked) <= 5
    means = [report["prompt_mean_kl"][index] for index in ranked]
    assert means == sorted(means, reverse=True)
    assert means[0] == max(report["prompt_mean_kl"])
    for index, entry in zip(ranked, document["most_divergent_prompts"], strict=True):
        assert entry["index"] == index
        assert entry == {"index": index, **document["prompts"][index]}
        assert len(entry["kl_by_position"]) == entry["counted_tokens"]
        assert sum(entry["kl_by_position"]) / entry["counted_tokens"] == pytest.approx(
            entry["mean_kl"]
        )
        first = entry["first_top1_difference"]
        assert first is None or 1 <= first <= entry["counted_tokens"]

    # The console lists the same prompts, most divergent first.
    table = output[output.index("Prompts that diverge most") :]
    top = document["prompts"][ranked[0]]["user"]
    assert top.split()[0] in table
    assert f"{report['prompt_mean_kl'][ranked[0]]:.4g}" in table


def test_quiet_run_of_a_model_against_itself(
    tiny_llama_path: Path,
    write_prompt_file: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = ["--prompts", write_prompt_file(PROMPTS[:2]), "--kl-tokens", 2]
    assert run_compare([tiny_llama_path, tiny_llama_path, *arguments, "--quiet"]) == 0
    output = capsys.readouterr().out
    assert "* Scoring" not in output  # No progress lines.
    # A model compared with itself diverges nowhere: no list.
    assert "Prompts that diverge most" not in output


def test_plain_progress_prints_a_line_per_tenth(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ComparisonProgress(40, plain=True) as progress:
        task = progress.progress.add_task("Step", total=40)
        for _ in range(10):
            progress.advance(task, 4)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        f"* Step: {count}/40 prompts" for count in range(4, 44, 4)
    ]
    with ComparisonProgress(40, plain=True) as progress:
        task = progress.progress.add_task("Step", total=40)
        for _ in range(40):
            progress.advance(task, 1)
    assert len(capsys.readouterr().out.splitlines()) == 10
    with ComparisonProgress(40, enabled=False, plain=True) as progress:
        task = progress.progress.add_task("Step", total=40)
        progress.advance(task, 40)
    assert capsys.readouterr().out == ""


def test_a_steps_clock_starts_with_its_first_forward_pass(
    tiny_llama_path: Path,
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path, dtype=torch.float32)
    with ComparisonProgress(1, plain=True) as progress:
        with progress.forward_passes(model, "Scoring"):
            (task,) = progress.progress.tasks
            assert task.start_time is None
            model(input_ids=torch.tensor([[1, 2, 3]]))
            assert task.start_time is not None
            assert task.completed == 1


# Output files.


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_output_to_a_folder_stops_before_loading(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The models do not exist: the outputs are checked before they are looked at.
    status = run_compare(["/no/such/original", "/no/such/candidate", flag, tmp_path])
    assert status == 2
    line = error_line(capsys)
    assert f"{flag}: {str(tmp_path)!r} is a folder; give a file name" in line


def test_unwritable_output_stops_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tests may run as root, who may write anywhere: the permission is faked.
    monkeypatch.setattr(command.os, "access", lambda *arguments: False)
    target = tmp_path / "report.json"
    status = run_compare(["/no/such/original", "/no/such/candidate", "--json", target])
    assert status == 2
    assert "--json: cannot create files in" in error_line(capsys)

    target.write_text("{}")
    status = run_compare(["/no/such/original", "/no/such/candidate", "--json", target])
    assert status == 2
    assert "exists and is not writable" in error_line(capsys)


def test_json_and_plot_to_the_same_file_stop_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    arguments = ["--json", target, "--plot", tmp_path / "." / "out"]
    assert run_compare(["/no/such/original", "/no/such/candidate", *arguments]) == 2
    assert "--json and --plot: both name" in error_line(capsys)


@pytest.mark.skipif(
    not os.path.exists("/dev/full"), reason="needs /dev/full, where writes fail"
)
def test_write_that_fails_at_the_end_keeps_the_report(
    tiny_llama_path: Path,
    noisy_llama: Path,
    write_prompt_file: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing_plot(*arguments: Any) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "plot.png"))

    monkeypatch.setattr(command, "write_plot", failing_plot)
    arguments = ["--prompts", write_prompt_file(PROMPTS[:3]), "--kl-tokens", 2]
    arguments += ["--json", "/dev/full", "--plot", tmp_path / "plot.png", "--quiet"]
    assert run_compare([tiny_llama_path, noisy_llama, *arguments]) == 1
    output = capsys.readouterr().out
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert "Teacher-forced KL divergence" in output
    assert "KL divergence by position" in output
    assert lines[-1] == (
        "heretic-kl: error: --json: cannot write '/dev/full' ([Errno 28] No space "
        f"left on device); --plot: cannot write '{tmp_path / 'plot.png'}' ([Errno "
        f"13] Permission denied: '{tmp_path / 'plot.png'}')."
    )
