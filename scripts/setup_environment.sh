#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# Creates the project's virtual environment in .venv when it is missing and
# installs the package with its test dependencies. Used by both README
# commands (scripts/main_job.sh and scripts/test.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment in .venv"
    python3 -m venv .venv
fi

# The installation is skipped when neither pyproject.toml nor this script has
# changed since the last successful one and the package is still installed:
# the install is editable, so edits to the source need no reinstall, and pip
# takes half a minute even when it has nothing to do.
stamp_file=.venv/.heretic-tfkl-install-stamp
stamp="$(cat pyproject.toml scripts/setup_environment.sh | sha256sum | cut -d ' ' -f 1)"
if [ "$(cat "$stamp_file" 2>/dev/null || true)" != "$stamp" ] \
    || ! .venv/bin/python -c \
        "import importlib.metadata as metadata; metadata.version('heretic-teacher-forced-kl')" \
        2>/dev/null; then
    # Torch comes first and pinned: on this project's machines that resolves
    # to a local CPU wheel, whereas a plain "torch" requirement would pull a
    # multi-gigabyte CUDA build from the package index.
    .venv/bin/python -m pip install -qq "torch==2.13.0"
    .venv/bin/python -m pip install -qq -e ".[test]"
    echo "$stamp" > "$stamp_file"
fi
