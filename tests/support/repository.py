# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The repository's root folder, and running its modules in a process of their own."""

import os
import sys
from collections.abc import Mapping
from pathlib import Path

#: The root of the repository, the folder that holds `development` and `tests`.
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def module_command(module: str, *arguments: str) -> list[str]:
    """The command that runs `module` with this interpreter: `python -m module ...`."""
    return [sys.executable, "-m", module, *arguments]


def environment_with_repository(
    environment: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """
    Returns `environment` (by default this process's) with the repository root
    first on `PYTHONPATH`, so that a process started in any folder imports
    `development` and `tests.support` by their full names.
    """
    result = dict(os.environ if environment is None else environment)
    paths = [part for part in result.get("PYTHONPATH", "").split(os.pathsep) if part]
    result["PYTHONPATH"] = os.pathsep.join([str(REPOSITORY_ROOT), *paths])
    return result
