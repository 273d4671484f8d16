# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The names by which heretic loads this package's scorer."""

#: The import path heretic loads the scorer by, in `scorers = [...]`.
TEACHER_FORCED_KL_PLUGIN = "heretic_teacher_forced_kl.TeacherForcedKL"

#: The scorer's class name, which names its `[scorer.TeacherForcedKL]` table.
TEACHER_FORCED_KL_CLASS = "TeacherForcedKL"
