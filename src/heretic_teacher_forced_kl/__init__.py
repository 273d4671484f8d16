# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Teacher-forced multi-token KL divergence: a better measure of model damage for heretic.

- `TeacherForcedKL`: the heretic scorer plugin (`heretic_teacher_forced_kl.TeacherForcedKL`).
- `TeacherForcedKLEngine`: the engine behind it, for heretic forks and other tools.
- `TeacherForcedKLSettings`: its settings, the `[scorer.TeacherForcedKL]` table.
"""

from importlib.metadata import PackageNotFoundError, version

from .adapters.scorer import TeacherForcedKL
from .engine import KLMeasurement, TeacherForcedKLEngine
from .settings import ReferenceStorage, TeacherForcedKLSettings

try:
    __version__ = version("heretic-teacher-forced-kl")
except PackageNotFoundError:
    __version__ = "0.0.0"

__all__ = [
    "KLMeasurement",
    "ReferenceStorage",
    "TeacherForcedKL",
    "TeacherForcedKLEngine",
    "TeacherForcedKLSettings",
    "__version__",
]
