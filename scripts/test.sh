#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# The README's test command: builds the project's virtual environment in
# .venv from nothing when needed (scripts/setup_environment.sh), prepares the
# SmolLM2 test model once per machine and runs pytest with the given arguments.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_environment.sh test

.venv/bin/python -m development.smollm2

exec .venv/bin/python -m pytest "$@"
