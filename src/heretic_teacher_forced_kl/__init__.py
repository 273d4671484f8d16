# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Teacher-forced multi-token KL divergence: a better measure of model damage for heretic.

- `TeacherForcedKL`: the heretic scorer plugin (`heretic_teacher_forced_kl.TeacherForcedKL`).
- `TeacherForcedKLEngine`: the engine behind it, for heretic forks and other tools.
- `TeacherForcedKLSettings`: its settings, the `[scorer.TeacherForcedKL]` table.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapters.scorer import TeacherForcedKL
    from .metric.engine import TeacherForcedKLEngine
    from .metric.measurement import KLMeasurement
    from .metric.memory import ReferenceStorage
    from .settings import TeacherForcedKLSettings

try:
    __version__ = version("heretic-teacher-forced-kl")
except PackageNotFoundError:
    __version__ = "0.0.0"

# The public names are imported on first use, so that the command line can
# reject bad input before torch and heretic's model code are loaded.
_PUBLIC_NAMES = {
    "KLMeasurement": ".metric.measurement",
    "ReferenceStorage": ".metric.memory",
    "TeacherForcedKL": ".adapters.scorer",
    "TeacherForcedKLEngine": ".metric.engine",
    "TeacherForcedKLSettings": ".settings",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC_NAMES:
        value = getattr(import_module(_PUBLIC_NAMES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KLMeasurement",
    "ReferenceStorage",
    "TeacherForcedKL",
    "TeacherForcedKLEngine",
    "TeacherForcedKLSettings",
    "__version__",
]
