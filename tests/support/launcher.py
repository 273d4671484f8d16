# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Running `heretic-kl` in the test's own process.

A test about the launcher's code (its checks, its messages, a real heretic
study it drives) calls `cli.main.main` here rather than starting a new Python,
which would load torch, transformers and heretic again (seconds each time,
many more on a loaded machine). What only a new process shows (the console
script, `--help`, which heretic prints while it is imported, a real Ctrl+C, a
broken installation) keeps its own process in the tests that are about it.
"""

import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from heretic_teacher_forced_kl.cli.main import main

#: Environment variables of every run: offline, as in CI.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run_in_process(
    arguments: list[str], directory: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    """
    Runs `heretic-kl arguments` in `directory` as a user would without a
    terminal (standard input not a terminal, offline, no `HERETIC_MODEL` unless
    given in `variables`), and returns its exit status and output as a
    finished process would.
    """
    output = io.StringIO()
    errors = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HERETIC_MODEL", raising=False)
        for name, value in {**OFFLINE, **variables}.items():
            patch.setenv(name, value)
        patch.chdir(directory)
        patch.setattr(sys, "stdin", io.StringIO(""))
        patch.setattr(sys, "argv", list(sys.argv))
        with redirect_stdout(output), redirect_stderr(errors):
            try:
                status = main(list(arguments))
            except SystemExit as raised:
                # argparse and heretic end some runs with `sys.exit`; a message
                # given to it is printed to standard error with status 1, as
                # Python does at the end of a process.
                if raised.code is None or isinstance(raised.code, int):
                    status = raised.code or 0
                else:
                    print(raised.code, file=sys.stderr)
                    status = 1
    return subprocess.CompletedProcess(
        ["heretic-kl", *arguments], status, output.getvalue(), errors.getvalue()
    )
