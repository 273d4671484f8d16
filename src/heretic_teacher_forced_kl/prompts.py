# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Prompt specifications from flags and files, loaded with one-line errors.

Both commands and both hosts take prompts as heretic's `DatasetSpecification`:
a plain `.txt` file with one prompt per line, a dataset saved on disk, or a
dataset ID. `prompts_table` turns a command-line value into such a table;
`load_prompt_set` loads one through a host's loader and turns every failure
into one line that names the setting.
"""

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError, one_line, parse_json
from .settings import default_prompts

#: The suffixes of prompt files that heretic reads from disk.
PROMPT_FILE_SUFFIXES = (".txt", ".jsonl", ".json", ".csv")

#: How to fix a prompt set that cannot be loaded.
PROMPTS_FIX = (
    "give a .txt file with one prompt per line, a dataset saved on disk, or a "
    "dataset ID with split and column"
)


def prompt_file_digest(dataset: str | None) -> str | None:
    """
    The SHA-256 of the local prompt file `dataset`, which a study records so
    that a continued study measures on the same prompts, or None when it is not
    a local file (a dataset ID or folder). The path is taken as heretic's
    `load_prompts` takes it, without expanding `~`.
    """
    if not dataset or not Path(dataset).is_file():
        return None
    return hashlib.sha256(Path(dataset).read_bytes()).hexdigest()


def prompts_table(value: str, flag: str) -> dict[str, Any]:
    """
    Turns the value of a prompts option (`--kl-prompts`, `compare --prompts`) into
    a dataset specification table: a JSON object as it is, an existing file by its
    path, anything else as a dataset ID or folder with the default split and column.
    """
    if value.lstrip().startswith("{"):
        specification: dict[str, Any] = parse_json(value, flag, dict, "an object")
        return specification
    if Path(value).is_file() or value.endswith(PROMPT_FILE_SUFFIXES):
        # A missing file is reported by `check_prompt_file`, like one in config.toml.
        return {"dataset": value}
    defaults = default_prompts()
    return {"dataset": value, "split": defaults.split, "column": defaults.column}


#: The byte-order mark that some editors write at the start of UTF-8 files.
BYTE_ORDER_MARK = "\ufeff"


def selected_line_count(line_count: int, split: str) -> int:
    """How many of a text file's `line_count` prompts a split such as "[:10]" selects."""
    # heretic's own reading of a split of a text file (imported only here: it
    # brings in the datasets library).
    from heretic.utils import get_split_slice

    start, end = get_split_slice(f"_{split}", line_count)
    return max(0, end - start)


def prompt_file_problem(path: Path, split: str | None = None) -> str | None:
    """
    What keeps heretic from reading prompts from the file at `path` (it reads any
    file as UTF-8 text with one prompt per line, blank lines skipped, and applies
    `split` to the lines), or None.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        return f"cannot be read ({one_line(error)})"
    if not data:
        return "is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
    # heretic would read a lone byte-order mark as a prompt of its own.
    # Lines as Python's text files split them (universal newlines), as heretic reads them.
    text = text.removeprefix(BYTE_ORDER_MARK).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    line_count = sum(1 for line in lines if line.strip())
    if line_count == 0:
        if data.startswith(BYTE_ORDER_MARK.encode("utf-8")):
            return "holds only a byte-order mark and blank lines"
        return "holds only blank lines"
    if split is not None:
        try:
            selected = selected_line_count(line_count, split)
        except Exception as error:  # noqa: BLE001
            return f"cannot take the split {split!r} ({one_line(error)})"
        if selected == 0:
            return f"holds {line_count} prompts, and the split {split!r} selects none"
    return None


def check_prompt_file(dataset: str, setting: str, split: str | None = None) -> None:
    """
    The one check of a prompt file. Stops with a one-line `UsageError` when
    `dataset` names a prompt file that is missing, or a local file that is empty,
    blank, unreadable or not UTF-8 text, or of which `split` selects nothing.
    Dataset IDs and folders are left to the loader.
    """
    path = Path(dataset)
    if path.is_file():
        problem = prompt_file_problem(path, split)
        if problem is not None:
            raise UsageError(
                f"{setting}: {dataset!r} {problem}; give a UTF-8 text file with one "
                "prompt per line (and a split that selects some of them)."
                if "split" in problem
                else f"{setting}: {dataset!r} {problem}; give a UTF-8 text file "
                "with one prompt per line."
            )
    elif dataset.endswith(PROMPT_FILE_SUFFIXES):
        raise UsageError(
            f"{setting}: no file at {dataset!r}; set it to an existing .txt file "
            "(one prompt per line) or a dataset ID or folder."
        )


def load_prompt_set(
    load: Callable[[Any], list[Any]], specification: Any, setting: str
) -> list[Any]:
    """
    Loads the prompts of `specification` with a host's loader (heretic's
    `load_prompts`, or the plugin context's), raising a one-line `UsageError`
    that names `setting` when the set cannot be loaded or is empty. The launcher
    has checked a prompt file before the model loaded; here the file is checked
    only to explain a failure (heretic run without the launcher).
    """
    try:
        prompts = load(specification)
    except Exception as error:
        check_prompt_file(specification.dataset, setting, specification.split)
        raise UsageError(
            f"{setting}: cannot load {specification.dataset!r} ({one_line(error)}); "
            f"{PROMPTS_FIX}."
        ) from None
    if not prompts:
        check_prompt_file(specification.dataset, setting, specification.split)
        raise UsageError(
            f"{setting}: {specification.dataset!r} (split {specification.split!r}) "
            "holds no prompts; point it at a non-empty prompt set."
        )
    if not any(
        str(getattr(prompt, "user", prompt)).replace(BYTE_ORDER_MARK, "").strip()
        for prompt in prompts
    ):
        # A file holding only a byte-order mark, which heretic reads as a prompt.
        check_prompt_file(specification.dataset, setting, specification.split)
    return list(prompts)
