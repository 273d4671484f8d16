# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The scale of the number (the trial line names heretic's first-token KL; a note
on heretic-llm 1.4.0's default `kl_divergence_target`, whose quoted ratios come
from docs/evidence) and log lines that stay whole off a terminal.
"""

import json
import logging
import os
import statistics
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from heretic_teacher_forced_kl.adapters.display import markdown_display, rich_display
from heretic_teacher_forced_kl.adapters.legacy.evaluator import (
    MEASURED_SCALE,
    target_note,
)
from heretic_teacher_forced_kl.console import quiet_harmless_warnings
from heretic_teacher_forced_kl.metric.divergence import position_weights
from heretic_teacher_forced_kl.metric.measurement import KLMeasurement
from tests.support.repository import REPOSITORY_ROOT

EVIDENCE = REPOSITORY_ROOT / "docs" / "evidence" / "results.json"


def measurement(kl: list[list[float]]) -> KLMeasurement:
    """A measurement of the given KL matrix (prompts x positions), all counted."""
    matrix = torch.tensor(kl)
    return KLMeasurement(
        kl=matrix,
        counted=torch.ones_like(matrix, dtype=torch.bool),
        weights=position_weights(matrix.shape[1], 1.0),
        targets=torch.zeros(matrix.shape, dtype=torch.long),
    )


def test_trial_line_names_the_first_token_kl() -> None:
    result = measurement([[0.06, 0.03, 0.01], [0.04, 0.02, 0.01]])
    assert result.position_means[0] == pytest.approx(result.first_token_mean)
    assert (
        rich_display(result) == "0.0283 [dim](first token 0.05, then 0.025 · 0.01)[/]"
    )
    assert markdown_display(result) == "0.0283 *(first token 0.05, then 0.025 · 0.01)*"


def test_single_token_line_is_the_first_token_kl() -> None:
    assert rich_display(measurement([[0.02], [0.04]])) == (
        "0.0300 [dim](first token 0.03)[/]"
    )


def test_quoted_scale_is_that_of_the_evidence() -> None:
    models = [
        model
        for model in json.loads(EVIDENCE.read_text())["models"]
        if not model["is_original"]
    ]
    assert len(models) == 40

    def ratios(tokens: int) -> list[float]:
        return [
            model["kl"][f"teacher_forced_{tokens}"] / model["kl"]["first_token"]
            for model in models
        ]

    for tokens, quoted in MEASURED_SCALE.items():
        assert statistics.median(ratios(tokens)) == pytest.approx(quoted, abs=0.005)
    assert round(min(ratios(3)), 2) == 0.46
    assert round(max(ratios(3)), 2) == 0.74
    readme = (REPOSITORY_ROOT / "README.md").read_text()
    config = (REPOSITORY_ROOT / "config.default.toml").read_text()
    for text in (readme, config):
        assert "0.54" in text and "0.46 to 0.74" in text and "0.40" in text


def heretic_settings(**values: float) -> SimpleNamespace:
    """heretic's settings as far as the note reads them: the target and what was set."""
    return SimpleNamespace(
        kl_divergence_target=values.get("kl_divergence_target", 0.01),
        model_fields_set=set(values),
    )


def test_note_when_the_default_target_is_in_force() -> None:
    assert target_note(heretic_settings(), 3) == (
        "Note: heretic's default kl_divergence_target 0.01 now applies to "
        "teacher-forced KL, about 0.54 x first-token KL at 3 tokens (measured on "
        "SmolLM2-135M-Instruct; see the README); for heretic's first-token "
        "threshold, pass --kl-divergence-target 0.0054."
    )
    note = target_note(heretic_settings(), 5)
    assert note is not None
    assert "0.54 x at 3, 0.40 x at 8, 0.42 x at 16 tokens" in note


def test_no_note_when_the_target_is_set_or_kl_is_heretics() -> None:
    assert target_note(heretic_settings(kl_divergence_target=0.01), 3) is None
    assert target_note(heretic_settings(), 1) is None


def test_harmless_dependency_warning_becomes_a_debug_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_harmless_warnings()
    quiet_harmless_warnings()
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.DEBUG):
        logger.warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s.",
            "offline",
        )
        logger.warning("Another warning of the same logger")
        logging.getLogger("bitsandbytes.cextension").warning(
            "Failed to load CPU gemm_4bit_forward, from elsewhere"
        )
    levels = [(record.name, record.levelno) for record in caplog.records]
    assert levels == [
        ("bitsandbytes.backends.cpu.ops", logging.DEBUG),
        ("bitsandbytes.backends.cpu.ops", logging.WARNING),
        ("bitsandbytes.cextension", logging.WARNING),
    ]


LONG_LINE = "* KL divergence (teacher-forced): 0.0291 (first token" + " · 0.01" * 30


def test_logs_off_a_terminal_are_not_wrapped() -> None:
    # What the launcher does with both consoles, in a process whose output is a pipe.
    script = (
        "import heretic.utils\n"
        "from heretic_teacher_forced_kl.adapters.host import unwrap_heretic_console\n"
        "from heretic_teacher_forced_kl.console import print\n"
        "unwrap_heretic_console()\n"
        f"print({LONG_LINE!r})\n"
        f"heretic.utils.print({LONG_LINE!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        env={
            name: value
            for name, value in os.environ.items()
            if name not in ("COLUMNS", "FORCE_TERMINAL", "TTY_COMPATIBLE")
        },
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [LONG_LINE] * 2
