#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# The style and architecture checks that CI runs: heretic's own style checks
# (`ruff format --check .` and `ruff check --extend-select I .`, with the ruff
# release that heretic's lock file pins) and the layering contracts of
# pyproject.toml, checked by import-linter. Installs both into .venv when
# missing (scripts/setup_environment.sh builds .venv).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_environment.sh test

if ! .venv/bin/ruff --version 2>/dev/null | grep -qx "ruff 0.14.8" \
    || [ ! -x .venv/bin/lint-imports ]; then
    echo "Installing ruff 0.14.8 and import-linter into .venv"
    .venv/bin/python -m pip install -qq "ruff==0.14.8" "import-linter>=2.17"
fi

echo "ruff format --check ."
.venv/bin/ruff format --check .
echo "ruff check --extend-select I ."
.venv/bin/ruff check --extend-select I .
echo "lint-imports (layering contracts of pyproject.toml)"
PYTHONPATH=src .venv/bin/lint-imports --no-cache
