# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Runs `heretic-kl` against the double of heretic master's main with its menus, in a process of its own.

Usage: python launcher_plugin_host_menus_driver.py [heretic-kl arguments...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doubles import plugin_host_menus  # noqa: E402
from doubles.plugin_api import install  # noqa: E402

install()
sys.modules["heretic.main"] = plugin_host_menus
import heretic  # noqa: E402

heretic.main = plugin_host_menus  # type: ignore[attr-defined]

from heretic_teacher_forced_kl.cli.main import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
