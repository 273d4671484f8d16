# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The names by which heretic, the command line and `config.toml` know the scorers."""

#: The import path heretic loads the scorer by, in `scorers = [...]`.
TEACHER_FORCED_KL_PLUGIN = "heretic_teacher_forced_kl.TeacherForcedKL"

#: The scorer's class name, which names its settings table.
TEACHER_FORCED_KL_CLASS_NAME = TEACHER_FORCED_KL_PLUGIN.rsplit(".", 1)[-1]

#: The table of `config.toml` that holds the scorer's settings.
SETTINGS_TABLE = f"scorer.{TEACHER_FORCED_KL_CLASS_NAME}"

#: The entry-point group in which packages register scorer plugins.
ENTRY_POINT_GROUP = "heretic.scorers"

#: The `--scorer` name of this package's scorer, and the launcher's default.
TEACHER_FORCED_KL_NAME = "teacher-forced-kl"

#: The `--scorer` name that selects heretic's built-in first-token KL divergence.
BUILT_IN_KL_NAME = "kl-divergence"

#: The import path of heretic's built-in KL divergence scorer (heretic master).
BUILT_IN_KL_PLUGIN = "heretic.scorers.kl_divergence.KLDivergence"

#: The top-level keys of `config.toml` that belong to scorer plugins rather than
#: to heretic's own settings: the scorer tables and the list of scorers.
PLUGIN_TABLES = ("scorer", "scorers")
