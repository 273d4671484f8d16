# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Runs `heretic-kl` against the double of heretic master's main with its menus, in a process of its own.

Usage, with the repository root on the import path:
python -m tests.support.launcher_plugin_host_menus_driver [heretic-kl arguments...]
"""

import sys

import heretic

from tests.support.doubles import plugin_host_menus
from tests.support.doubles.plugin_api import install


def main() -> int:
    """Puts the host double with menus in place, then runs `heretic-kl`."""
    install()
    sys.modules["heretic.main"] = plugin_host_menus
    heretic.main = plugin_host_menus  # type: ignore[attr-defined]
    # The launcher is imported only now, so that it finds the double in place
    # whatever it looks up when it is imported.
    from heretic_teacher_forced_kl.cli.main import main as launch

    return launch(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
