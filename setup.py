# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The one build step that pyproject.toml cannot declare: `config.default.toml`
lives at the top of the repository, as heretic keeps its own, and ships inside
the package, where `heretic-kl --print-config` reads it.

A wheel gets a copy of the top-level file (the sdist holds the top-level file,
see MANIFEST.in, so a wheel built from the sdist gets the same copy). An
editable install links the package's copy to the top-level file instead, so
that an edit shows at once; the link is not part of the repository (.gitignore).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: The settings file, at the top of the source tree and inside the package.
CONFIG_FILE = "config.default.toml"
PACKAGE = "heretic_teacher_forced_kl"


class BuildWithDefaultConfig(build_py):
    """Builds the package with the top-level `config.default.toml` inside it."""

    def run(self) -> None:
        super().run()
        source = Path(CONFIG_FILE).resolve()
        if self.editable_mode:
            link = Path("src", PACKAGE, CONFIG_FILE)
            if link.is_symlink() or link.exists():
                link.unlink()
            try:
                link.symlink_to(Path("..", "..", CONFIG_FILE))
            except OSError:
                # Where symbolic links are not allowed, a copy (refreshed by
                # the next editable install).
                shutil.copyfile(source, link)
        else:
            self.copy_file(str(source), str(Path(self.build_lib, PACKAGE, CONFIG_FILE)))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode:
            outputs.append(str(Path(self.build_lib, PACKAGE, CONFIG_FILE)))
        return outputs


setup(cmdclass={"build_py": BuildWithDefaultConfig})
