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


def prompts_table(value: str, flag: str) -> dict[str, Any]:
    """
    Turns the value of a prompts option (`--kl-prompts`, `compare --prompts`) into
    a dataset specification table: a JSON object as it is, an existing file by its
    path, anything else as a dataset ID or folder with the default split and column.
    """
    if value.lstrip().startswith("{"):
        specification: dict[str, Any] = parse_json(value, flag, dict, "an object")
        return specification
    if Path(value).is_file():
        return {"dataset": value}
    if value.endswith(PROMPT_FILE_SUFFIXES):
        raise UsageError(
            f"{flag}: no file at {value!r}; give a .txt file with one prompt per line."
        )
    defaults = default_prompts()
    return {"dataset": value, "split": defaults.split, "column": defaults.column}


def prompt_file_problem(path: Path) -> str | None:
    """
    What keeps heretic from reading prompts from the file at `path` (it reads any
    file as UTF-8 text with one prompt per line, blank lines skipped), or None.
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
    if not text.strip():
        return "holds only blank lines"
    return None


def check_prompt_file(dataset: str, setting: str) -> None:
    """
    Stops with a one-line `ValueError` when `dataset` names a prompt file that is
    missing, or a local file that is empty, blank, unreadable or not UTF-8 text.
    Dataset IDs and folders are left to the loader.
    """
    path = Path(dataset)
    if path.is_file():
        problem = prompt_file_problem(path)
        if problem is not None:
            raise ValueError(
                f"{setting}: {dataset!r} {problem}; give a UTF-8 text file with one "
                "prompt per line."
            )
    elif dataset.endswith(PROMPT_FILE_SUFFIXES):
        raise ValueError(
            f"{setting}: no file at {dataset!r}; set it to an existing .txt file "
            "(one prompt per line) or a dataset ID or folder."
        )


def load_prompt_set(
    load: Callable[[Any], list[Any]], specification: Any, setting: str
) -> list[Any]:
    """
    Loads the prompts of `specification` with a host's loader (heretic's
    `load_prompts`, or the plugin context's), raising a one-line `ValueError`
    that names `setting` when the set cannot be loaded or is empty.
    """
    check_prompt_file(specification.dataset, setting)
    try:
        prompts = load(specification)
    except Exception as error:
        raise ValueError(
            f"{setting}: cannot load {specification.dataset!r} ({one_line(error)}); "
            f"{PROMPTS_FIX}."
        ) from None
    if not prompts:
        raise ValueError(
            f"{setting}: {specification.dataset!r} (split {specification.split!r}) "
            "holds no prompts; point it at a non-empty prompt set."
        )
    return list(prompts)
