# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
`heretic-kl --version` and `heretic-kl --print-config`: what is installed.

Both answer from the package's metadata and data files alone, without
importing heretic or torch, so they take well under a second.
"""

from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files

from .. import __version__

#: The distribution names of this package and of heretic.
PACKAGE_DISTRIBUTION = "heretic-teacher-forced-kl"
HERETIC_DISTRIBUTION = "heretic-llm"

#: The settings file that documents every setting, shipped inside the package.
DEFAULT_CONFIG_FILE = "config.default.toml"


def installed_version(distribution: str) -> str:
    """The installed version of `distribution`, or a note that it is missing."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def version_text() -> str:
    """One line with this package's version and heretic's."""
    return (
        f"{PACKAGE_DISTRIBUTION} {__version__}, "
        f"{HERETIC_DISTRIBUTION} {installed_version(HERETIC_DISTRIBUTION)}"
    )


def default_config_text() -> str:
    """The bundled `config.default.toml`: every setting with its description and default."""
    return (
        files("heretic_teacher_forced_kl")
        .joinpath(DEFAULT_CONFIG_FILE)
        .read_text(encoding="utf-8")
    )
