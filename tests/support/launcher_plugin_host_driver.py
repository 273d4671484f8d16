# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Runs `heretic-kl` against the plugin-API host double in a process of its own.

Usage, with the repository root on the import path:
python -m tests.support.launcher_plugin_host_driver [heretic-kl arguments...]
"""

import sys
from types import ModuleType

import heretic

from tests.support.doubles import plugin_host_main
from tests.support.doubles.plugin_api import install


def run_launcher_on(host_main: ModuleType) -> int:
    """
    Puts the plugin-API double and `host_main` (a double of heretic master's
    `heretic.main`) in place, then runs `heretic-kl` with this process's arguments.
    """
    install()
    sys.modules["heretic.main"] = host_main
    heretic.main = host_main  # type: ignore[attr-defined]
    # The launcher is imported only now, so that it finds the double in place
    # whatever it looks up when it is imported.
    from heretic_teacher_forced_kl.cli.main import main as launch

    return launch(sys.argv[1:])


def main() -> int:
    """Runs `heretic-kl` against the double of heretic master's `main`."""
    return run_launcher_on(plugin_host_main)


if __name__ == "__main__":
    sys.exit(main())
