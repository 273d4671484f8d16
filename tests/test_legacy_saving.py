# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Issue 19 items 1 and 2 on the real heretic-llm 1.4.0: a save that fails (a
full disk) or is interrupted is reported as not saved, with exit status 1 and
no folder that looks like a saved model; `--save-to` never writes into a
`trial-N` that already holds files. The launcher runs in process
(`cli.main.main`), except where Ctrl+C itself is under test.
"""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from heretic_teacher_forced_kl.adapters.legacy.menus import (
    NonInteractiveMenus,
)
from heretic_teacher_forced_kl.adapters.saving import (
    INCOMPLETE_MARK,
    SavePlan,
    saved_model_problem,
)
from heretic_teacher_forced_kl.cli.main import main
from tests.support.repository import environment_with_repository
from tests.test_launcher import write_study_config

pytestmark = pytest.mark.end_to_end


def folders(directory: Path) -> list[str]:
    """The names in `directory` (none when it does not exist)."""
    return (
        sorted(path.name for path in directory.iterdir()) if directory.is_dir() else []
    )


@pytest.fixture
def study_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama_path: Path
) -> Path:
    """A folder with the config of a two-trial 1.4.0 study, as the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HERETIC_MODEL", raising=False)
    write_study_config(tmp_path, trials=2)
    return tmp_path


def test_failed_and_interrupted_saves_are_never_reported_as_saved(
    study_folder: Path,
    tiny_llama_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import transformers.modeling_utils
    from transformers import PreTrainedTokenizerBase

    model = str(tiny_llama_path)
    assert main(["--non-interactive", "--kl-tokens", "2", model]) == 0
    capsys.readouterr()
    # In process, heretic's run leaves nothing of the launcher's behind.
    import heretic.main
    import torch

    assert torch.is_grad_enabled()
    assert heretic.main.prompt_select is heretic.utils.prompt_select

    # The disk fills up while heretic writes the weights: heretic catches the
    # error and shows it; only the configuration is on disk.
    real_save_file = transformers.modeling_utils.safe_save_file

    def save_file_on_a_full_disk(tensors: Any, filename: str, **_: Any) -> None:
        Path(filename).write_bytes(b"\0" * 64)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(
        transformers.modeling_utils, "safe_save_file", save_file_on_a_full_disk
    )
    assert main(["--save-to", "saved", model]) == 1
    output = capsys.readouterr().out
    assert "No space left on device" in output
    assert (
        "not saved: heretic's save failed (its error is shown above); the partial "
        "folder was removed." in output
    )
    assert "Non-interactive run: saved trial" not in output
    assert folders(study_folder / "saved") == []

    # Ctrl+C while heretic writes the tokenizer, after the weights: heretic stops
    # with "Shutting down...", and the launcher reports the save as interrupted.
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", real_save_file)

    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", interrupted)
    assert main(["--save-to", "saved", model]) == 1
    output = capsys.readouterr().out
    assert "Shutting down" in output
    assert "not saved: the save was interrupted; the partial folder was removed." in (
        output
    )
    assert "heretic's error is shown above" not in output
    assert folders(study_folder / "saved") == []

    # A whole save is renamed into place; another into the same folder stops at once.
    monkeypatch.undo()
    monkeypatch.chdir(study_folder)
    assert main(["--save-to", "saved", model]) == 0
    output = capsys.readouterr().out
    saved = folders(study_folder / "saved")
    assert saved and all(name.startswith("trial-") for name in saved)
    assert not any(INCOMPLETE_MARK in name for name in saved)
    for name in saved:
        assert saved_model_problem(study_folder / "saved" / name) is None
        assert f"Model saved to saved/{name}." in output
    assert INCOMPLETE_MARK not in output

    # Issue 19 item 2: never into a trial-N folder that already holds a model.
    assert main(["--save-to", "saved", model]) == 2
    output = capsys.readouterr().out
    assert output.startswith(f"heretic-kl: error: --save-to: saved/{saved[0]} already")
    assert len(output.strip().splitlines()) == 1
    trial = saved[0].removeprefix("trial-")
    assert main(["--save-to", "saved", "--save-trials", trial, model]) == 2
    assert "already holds files" in capsys.readouterr().out


# The driver gives Ctrl+C its terminal behaviour first: a process started in
# the background by a shell without job control (`command &` in a script)
# inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
#: A driver that runs the launcher with a tokenizer save that waits to be interrupted.
SLOW_SAVE_DRIVER = """
import signal, sys, time
from transformers import PreTrainedTokenizerBase
from heretic_teacher_forced_kl.cli.main import main

signal.signal(signal.SIGINT, signal.default_int_handler)

def slow_save(*_, **__):
    print("TOKENIZER SAVE BEGINS", flush=True)
    time.sleep(120)

PreTrainedTokenizerBase.save_pretrained = slow_save
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_a_save_leaves_no_complete_looking_folder(
    study_folder: Path, tiny_llama_path: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE_DRIVER, "--save-to", "saved", "--kl-tokens"]
        + ["2", str(tiny_llama_path)],
        cwd=study_folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment_with_repository(dict(os.environ)),
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 600
    for line in process.stdout:
        lines.append(line)
        if line.startswith("TOKENIZER SAVE BEGINS"):
            # The weights are written; the tokenizer is not.
            process.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(lines)[-3000:]
    output = "".join(lines) + process.stdout.read()
    assert process.wait(timeout=120) == 1, output[-3000:]
    assert "not saved: the save was interrupted; the partial folder was removed." in (
        output
    )
    assert "Non-interactive run: saved trial" not in output
    assert folders(study_folder / "saved") == []


def test_menus_report_a_save_that_returned_but_does_not_load(tmp_path: Path) -> None:
    menus = NonInteractiveMenus(save_plan=SavePlan(directory=tmp_path, trials=(1,)))
    menus.reached_trial_menu = True
    menus.current = 1
    folder = Path(menus.text("Path to the folder:"))
    assert folder.parent == tmp_path and INCOMPLETE_MARK in folder.name
    (folder / "config.json").write_text("{}")
    printed: list[Any] = []
    host_print = menus.filtered_print(lambda *objects, **_: printed.extend(objects))
    host_print(f"Model saved to [bold]{folder}[/].")
    assert printed == []
    assert menus.finish() == 1
    assert "no model weights" in menus.failed[1]
    assert folders(tmp_path) == []


def test_trials_left_unsaved_by_an_interrupted_run_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    menus = NonInteractiveMenus(save_plan=SavePlan(directory=tmp_path))
    menus.reached_trial_menu = True
    menus.pending = [5, 7]
    menus.current = 2
    menus.text("Path to the folder:")
    # Ctrl+C: heretic stops ("Shutting down...") and returns.
    assert menus.finish() == 1
    output = capsys.readouterr().out
    assert "trial 2 not saved: the save was interrupted" in output
    assert "trial 5, 7 not saved: the run ended before their saves." in output
    assert folders(tmp_path) == []
