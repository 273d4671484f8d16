# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Model arguments of both commands: a local folder or a Hugging Face model ID,
checked before anything is loaded.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

#: The file that marks a folder as a PEFT adapter.
ADAPTER_CONFIG_FILE = "adapter_config.json"

#: The file that marks a folder as a Hugging Face model.
MODEL_CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ModelSource:
    """A model argument: a local folder or a Hugging Face model ID, and whether it is an adapter."""

    argument: str
    name: str
    location: str
    is_local: bool
    is_adapter: bool


def looks_like_local_path(model: str) -> bool:
    """
    Whether `model` names a folder on disk rather than a Hugging Face model ID
    (which has the form `owner/name`).
    """
    if model.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.isabs(model):
        return True
    return model.count("/") > 1 or "\\" in model


def missing_folder_error(argument: str, name: str) -> UsageError:
    """The error for a local-looking model argument with nothing at its path."""
    return UsageError(
        f"{name}: no model folder at {argument!r}; give the path of a saved model "
        "or a Hugging Face model ID (owner/name)."
    )


def resolve_source(argument: str, name: str, allow_adapter: bool = True) -> ModelSource:
    """
    Checks a model argument (`name` is MODEL, ORIGINAL or CANDIDATE) before
    anything is loaded: a local folder must exist and hold a model, or, where
    `allow_adapter` is set, a LoRA adapter.
    """
    path = Path(argument).expanduser()
    if path.exists():
        accepted = f"a model folder (with {MODEL_CONFIG_FILE})"
        if allow_adapter:
            accepted += f" or a LoRA adapter folder (with {ADAPTER_CONFIG_FILE})"
        if not path.is_dir():
            raise UsageError(f"{name}: {argument!r} is a file; give {accepted}.")
        is_adapter = (path / ADAPTER_CONFIG_FILE).is_file()
        has_config = (path / MODEL_CONFIG_FILE).is_file()
        if allow_adapter and not is_adapter and not has_config:
            raise UsageError(
                f"{name}: {argument!r} holds neither {MODEL_CONFIG_FILE} nor "
                f"{ADAPTER_CONFIG_FILE}; give a saved model folder or a LoRA adapter folder."
            )
        if not allow_adapter and not has_config:
            kind = " (it is a LoRA adapter folder)" if is_adapter else ""
            raise UsageError(
                f"{name}: {argument!r} holds no {MODEL_CONFIG_FILE}{kind}; give a saved "
                "model folder or a Hugging Face model ID (owner/name)."
            )
        return ModelSource(
            argument, name, str(path), is_local=True, is_adapter=is_adapter
        )
    if looks_like_local_path(argument):
        raise missing_folder_error(argument, name)
    return ModelSource(argument, name, argument, is_local=False, is_adapter=False)
