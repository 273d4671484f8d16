# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""`python -m heretic_teacher_forced_kl.cli` runs `heretic-kl`."""

from .main import entry_point

entry_point()
