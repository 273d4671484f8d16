# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Runs `heretic-kl` against the double of heretic master's main with its menus, in a process of its own.

Usage, with the repository root on the import path:
python -m tests.support.launcher_plugin_host_menus_driver [heretic-kl arguments...]
"""

import sys

from tests.support.doubles import plugin_host_menus
from tests.support.launcher_plugin_host_driver import run_launcher_on


def main() -> int:
    """Runs `heretic-kl` against the double of heretic master's `main` with its menus."""
    return run_launcher_on(plugin_host_menus)


if __name__ == "__main__":
    sys.exit(main())
