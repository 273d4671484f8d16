# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Issue 19 item 1: a save counts only when it returned normally and the folder
loads; otherwise the partial folder is removed and never looks complete
(`adapters/saving.py`, used by the launcher on both hosts).
"""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from heretic_teacher_forced_kl.adapters.saving import (
    INCOMPLETE_MARK,
    AtomicSave,
    check_free,
    save_atomically,
    saved_model_problem,
)
from heretic_teacher_forced_kl.errors import RunError, UsageError


def save_merged(source: Path, folder: Path, max_shard_size: str = "5GB") -> None:
    """Saves the model of `source` as heretic saves a merged model: weights, then tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(source)
    model.save_pretrained(folder, max_shard_size=max_shard_size)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)


def save_adapter(source: Path, folder: Path) -> None:
    """Saves a LoRA adapter of the model of `source`, as heretic saves one."""
    model = AutoModelForCausalLM.from_pretrained(source)
    peft_model = get_peft_model(model, LoraConfig(r=1, target_modules=["o_proj"]))
    peft_model.save_pretrained(folder)


def leftovers(directory: Path) -> list[str]:
    """The names of the folders of unfinished saves in `directory`."""
    return [path.name for path in directory.iterdir() if INCOMPLETE_MARK in path.name]


def test_whole_merged_model_and_adapter_load(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    save_merged(tiny_llama_path, tmp_path / "merged")
    assert saved_model_problem(tmp_path / "merged") is None
    save_merged(tiny_llama_path, tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    assert saved_model_problem(tmp_path / "sharded") is None
    save_adapter(tiny_llama_path, tmp_path / "adapter")
    assert saved_model_problem(tmp_path / "adapter", "adapter") is None


def test_partial_folders_do_not_load(tmp_path: Path, tiny_llama_path: Path) -> None:
    whole = tmp_path / "whole"
    save_merged(tiny_llama_path, whole, max_shard_size="20KB")

    def damaged(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(whole, folder)
        return folder

    # A disk that filled up during the weights: only the configuration was written.
    folder = damaged("configuration-only")
    for path in folder.iterdir():
        if path.name not in ("config.json", "generation_config.json"):
            path.unlink()
    assert saved_model_problem(folder) == "no model weights (model.safetensors)"

    folder = damaged("missing-shard")
    shard = sorted(folder.glob("model-*.safetensors"))[-1]
    shard.unlink()
    assert saved_model_problem(folder) == (
        f"{shard.name} is missing (named by model.safetensors.index.json)"
    )

    folder = damaged("truncated-shard")
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    problem = saved_model_problem(folder)
    assert problem is not None and problem.startswith(
        f"{shard.name} is incomplete or damaged"
    )

    # Interrupted before the tokenizer.
    folder = damaged("no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    assert saved_model_problem(folder) == "the tokenizer is missing"

    folder = damaged("truncated-tokenizer")
    text = (folder / "tokenizer.json").read_text()
    (folder / "tokenizer.json").write_text(text[: len(text) // 2])
    assert saved_model_problem(folder) == (
        "tokenizer.json cannot be read (JSONDecodeError)"
    )

    adapter = tmp_path / "adapter"
    save_adapter(tiny_llama_path, adapter)
    (adapter / "adapter_model.safetensors").unlink()
    assert saved_model_problem(adapter, "adapter") == (
        "no adapter_model weights (adapter_model.safetensors)"
    )
    # An adapter is not a merged model, and the other way round.
    assert saved_model_problem(whole, "adapter") == "adapter_config.json is missing"


def test_save_that_loads_is_renamed_into_place(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    target = tmp_path / "out" / "trial-3"
    seen: list[Path] = []

    def save(folder: Path) -> None:
        seen.append(folder)
        # heretic saves into the temporary folder beside the target.
        assert folder.parent == target.parent
        assert folder.name.startswith("trial-3" + INCOMPLETE_MARK)
        assert not target.exists()
        save_merged(tiny_llama_path, folder)

    assert save_atomically(target, save) == target
    # The folder has the permissions of any new folder, not a private one's.
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~mask
    assert saved_model_problem(target) is None
    assert not seen[0].exists()
    assert leftovers(target.parent) == []


def test_disk_full_save_is_removed_and_reported(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    target = tmp_path / "trial-1"

    def save_until_the_disk_fills(folder: Path) -> None:
        model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
        model.config.save_pretrained(folder)
        (folder / "model.safetensors").write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        save_atomically(target, save_until_the_disk_fills)
    assert not target.exists()
    assert leftovers(tmp_path) == []

    # A save that returns normally but leaves a partial folder.
    def save_configuration_only(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))

    with pytest.raises(RunError, match=r"trial-1 not saved: no model weights"):
        save_atomically(target, save_configuration_only)
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_interrupted_save_is_removed(tmp_path: Path, tiny_llama_path: Path) -> None:
    target = tmp_path / "trial-1"

    def interrupted(folder: Path) -> None:
        AutoModelForCausalLM.from_pretrained(tiny_llama_path).save_pretrained(folder)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_atomically(target, interrupted)
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_target_taken_meanwhile_is_never_written_into(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    target = tmp_path / "trial-1"
    attempt = AtomicSave(target)
    folder = attempt.begin()
    save_merged(tiny_llama_path, folder)
    target.mkdir()
    (target / "adapter_config.json").write_text("{}")
    outcome = attempt.complete()
    assert outcome.folder == tmp_path / "trial-1-2" and outcome.renamed
    assert sorted(path.name for path in target.iterdir()) == ["adapter_config.json"]
    assert saved_model_problem(tmp_path / "trial-1-2") is None


def test_occupied_target_is_a_one_line_error(tmp_path: Path) -> None:
    check_free(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    check_free(tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "config.json").write_text("{}")
    with pytest.raises(UsageError, match=r"^--save-to: \S+full already holds files"):
        check_free(tmp_path / "full")


def test_save_to_a_folder_with_a_saved_trial_stops_before_heretic_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from heretic_teacher_forced_kl.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HERETIC_MODEL", raising=False)
    (tmp_path / "saved" / "trial-4").mkdir(parents=True)
    (tmp_path / "saved" / "trial-4" / "adapter_config.json").write_text("{}")
    (tmp_path / "saved" / "trial-5").mkdir()
    (tmp_path / "saved" / "notes.txt").write_text("mine")
    # Every Pareto-optimal trial: any trial-N with files counts.
    assert main(["--save-to", "saved", "owner/model"]) == 2
    output = capsys.readouterr().out
    assert output.startswith(
        "heretic-kl: error: --save-to: saved/trial-4 already holds files"
    )
    assert len(output.strip().splitlines()) == 1
    assert "Loading model" not in output
    # Named trials: only theirs (an empty trial-5 is free).
    assert main(["--save-to", "saved", "--save-trials", "5,4", "owner/model"]) == 2
    assert "saved/trial-4 already holds files" in capsys.readouterr().out
