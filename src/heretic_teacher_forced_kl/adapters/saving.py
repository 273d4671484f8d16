# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Saving a model so that a half-written one never looks like a whole one.

heretic saves a chosen trial with its own code (`save_pretrained` of the
merged model and the tokenizer, or of the LoRA adapter). On either host the
launcher points that code at a temporary folder beside the target, named
`<target>.incomplete-<random>`, and the save counts only when heretic's save
returned normally and the folder loads: its configuration, every weight shard
that its index names, and the tokenizer for a merged model; the adapter
configuration and weights for an adapter. Then the folder is renamed into
place with `os.replace`. A save that raised, was interrupted (Ctrl+C) or left
a folder that does not load is removed, so the target never holds a partial
model; where the removal itself fails, the folder keeps its "incomplete" name.

The host adapters use `AtomicSave` (`begin`, then `complete` or `abandon`)
where heretic saves on its own, and `save_atomically` where they call the save
themselves. Nothing here imports heretic.
"""

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunError, UsageError


@dataclass(frozen=True)
class SavePlan:
    """Which trials a non-interactive run saves (`--save-to`, `--save-trials`), and where."""

    #: The folder that receives one subfolder per saved trial.
    directory: Path

    #: The trial numbers (as heretic shows them, "[Trial N]") to save, or None
    #: for every Pareto-optimal trial.
    trials: tuple[int, ...] | None = None

    #: heretic's export strategy: "merge" (the full model) or "adapter" (the
    #: LoRA adapter only). heretic asks for it only when its own
    #: `export_strategy` setting is unset, as in a continued study, whose saved
    #: settings replace those of the command line.
    export_strategy: str = "merge"

    def folder(self, trial: int) -> Path:
        """The folder that trial `trial` is saved to."""
        return self.directory / f"trial-{trial}"

    def describe(self) -> str:
        """The trials to save, in words."""
        if self.trials is None:
            return "every Pareto-optimal trial"
        return "trial" + ("s " if len(self.trials) > 1 else " ") + numbers(self.trials)


def numbers(values: Sequence[int]) -> str:
    """Trial numbers as "1, 3, 7"."""
    return ", ".join(str(value) for value in values)


#: The part of a temporary folder's name that marks it as an unfinished save.
INCOMPLETE_MARK = ".incomplete-"

#: heretic's export strategies (its `ExportStrategy` values).
MERGE = "merge"
ADAPTER = "adapter"


def occupied(folder: Path) -> bool:
    """Whether `folder` is a file, or a folder that holds anything."""
    if not folder.exists():
        return False
    if not folder.is_dir():
        return True
    return any(folder.iterdir())


def check_free(target: Path, option: str = "--save-to") -> None:
    """
    Stops with a one-line error when `target` already holds files, so that a new
    save never mixes with an earlier model (`option` names the setting).
    """
    if occupied(target):
        raise UsageError(
            f"{option}: {target} already holds files (an earlier saved model?); "
            "a new save would mix with it. Choose another folder, or move or "
            f"delete {target} first."
        )


def json_problem(path: Path) -> str | None:
    """Why the JSON file `path` cannot be read, or None when it can."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return f"{path.name} cannot be read ({type(error).__name__})"
    return None


def weights_problem(path: Path, tensors: set[str] | None = None) -> str | None:
    """
    Why the weight file `path` cannot be loaded, or None when it can: a
    safetensors file must have a complete header that covers the whole file
    (and hold `tensors`, where given); a PyTorch file must be a whole archive.
    """
    if not path.is_file():
        return f"{path.name} is missing"
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as weights:
                keys = set(weights.keys())
        except Exception as error:  # noqa: BLE001 - safetensors raises its own types.
            return (
                f"{path.name} is incomplete or damaged ({' '.join(str(error).split())})"
            )
        missing = (tensors or set()) - keys
        if missing:
            return f"{path.name} lacks {len(missing)} tensors that the index names"
        return None
    if not zipfile.is_zipfile(path):
        return f"{path.name} is incomplete or damaged"
    return None


def indexed_weights_problem(index: Path) -> str | None:
    """Why the shards that the index file `index` names cannot be loaded, or None."""
    problem = json_problem(index)
    if problem is not None:
        return problem
    weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        return f"{index.name} names no weights"
    shards: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        shards.setdefault(str(shard), set()).add(str(tensor))
    for shard, tensors in sorted(shards.items()):
        problem = weights_problem(index.parent / shard, tensors)
        if problem is not None:
            return f"{problem} (named by {index.name})"
    return None


def model_weights_problem(folder: Path, stem: str) -> str | None:
    """
    Why the weights `stem` (such as "model" or "adapter_model") in `folder`
    cannot be loaded, or None: sharded with an index, or in one file.
    """
    names = (
        f"{stem}.safetensors",
        "pytorch_model.bin" if stem == "model" else f"{stem}.bin",
    )
    for index_name in (f"{stem}.safetensors.index.json", f"{names[1]}.index.json"):
        if (folder / index_name).is_file():
            return indexed_weights_problem(folder / index_name)
    for name in names:
        if (folder / name).is_file():
            return weights_problem(folder / name)
    return f"no {stem} weights ({names[0]})"


#: The files of which a saved tokenizer holds at least one, beside tokenizer_config.json.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)


def saved_model_problem(folder: Path, export_strategy: str = MERGE) -> str | None:
    """
    Why `folder` does not hold a loadable saved model, or None when it does.

    A merged model (`export_strategy` "merge") needs its configuration, every
    weight shard that its index names and its tokenizer; an adapter ("adapter")
    needs its adapter configuration and weights. Every JSON file must be whole.
    Nothing is imported from the folder, so no code of the model runs.
    """
    if not folder.is_dir():
        return f"{folder} is not a folder"
    for path in sorted(folder.glob("*.json")):
        problem = json_problem(path)
        if problem is not None:
            return problem
    if export_strategy == ADAPTER:
        if not (folder / "adapter_config.json").is_file():
            return "adapter_config.json is missing"
        return model_weights_problem(folder, "adapter_model")
    if not (folder / "config.json").is_file():
        return "config.json is missing"
    problem = model_weights_problem(folder, "model")
    if problem is not None:
        return problem
    if not (folder / "tokenizer_config.json").is_file() or not any(
        (folder / name).is_file() for name in TOKENIZER_FILES
    ):
        return "the tokenizer is missing"
    return None


def current_umask() -> int:
    """The process's file mode creation mask."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove(folder: Path) -> bool:
    """Removes a folder of an unfinished save; returns whether it is gone."""
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def free_name(target: Path) -> Path:
    """`target`, or the first of `target-2`, `target-3`, ... that holds nothing."""
    candidate, number = target, 1
    while occupied(candidate):
        number += 1
        candidate = target.with_name(f"{target.name}-{number}")
    return candidate


@dataclass
class SaveOutcome:
    """What became of one save."""

    #: The folder that holds the saved model, or None when nothing was saved.
    folder: Path | None

    #: Why nothing was saved (None when saved), as a phrase for one line.
    problem: str | None = None

    #: Whether the target was taken meanwhile, so that the model went to `folder` instead.
    renamed: bool = False


@dataclass
class AtomicSave:
    """
    One save of a model into `target`, through a temporary folder beside it:
    `begin` gives the folder to save into, then `complete` (after the save
    returned normally) checks it and renames it into place, or `abandon` (after
    the save failed or was interrupted) removes it.
    """

    #: The folder that the model should end up in.
    target: Path

    #: heretic's export strategy of this save: "merge" or "adapter".
    export_strategy: str = MERGE

    #: The temporary folder, once `begin` has made it.
    temporary: Path | None = None

    def begin(self) -> Path:
        """Makes the temporary folder beside the target and returns it."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = Path(
            tempfile.mkdtemp(
                prefix=self.target.name + INCOMPLETE_MARK, dir=self.target.parent
            )
        )
        # mkdtemp makes a private folder; a saved model gets the permissions
        # of any new folder, as when heretic makes it.
        self.temporary.chmod(0o777 & ~current_umask())
        return self.temporary

    def abandon(self) -> str:
        """Removes the temporary folder; returns a phrase saying what is left."""
        if self.temporary is None:
            return "nothing was written"
        folder, self.temporary = self.temporary, None
        if remove(folder):
            return "the partial folder was removed"
        return f"the partial folder is left as {folder}"

    def complete(self) -> SaveOutcome:
        """
        Checks the saved folder and renames it into place; otherwise removes it.
        A target that meanwhile holds files is never written into: the model then
        goes to the first free `<target>-N`.
        """
        if self.temporary is None:
            return SaveOutcome(None, "nothing was saved")
        try:
            problem = saved_model_problem(self.temporary, self.export_strategy)
            if problem is not None:
                return SaveOutcome(None, f"{problem}; {self.abandon()}")
            destination = free_name(self.target)
            if destination.is_dir():
                # An empty folder: `os.replace` cannot replace a folder everywhere.
                destination.rmdir()
            os.replace(self.temporary, destination)
        except BaseException:
            self.abandon()
            raise
        self.temporary = None
        return SaveOutcome(destination, renamed=destination != self.target)


def save_atomically(
    target: Path, save: Callable[[Path], None], export_strategy: str = MERGE
) -> Path:
    """
    Runs `save(folder)` into a temporary folder beside `target` and renames the
    result into place once it loads; returns the folder that holds the model.
    A save that raises is removed and re-raised; one whose folder does not load
    is removed and reported as a one-line `RunError`.
    """
    attempt = AtomicSave(target, export_strategy)
    folder = attempt.begin()
    try:
        save(folder)
    except BaseException:
        attempt.abandon()
        raise
    outcome = attempt.complete()
    if outcome.folder is None:
        raise RunError(f"{target} not saved: {outcome.problem}.")
    return outcome.folder
