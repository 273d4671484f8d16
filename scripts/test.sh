#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# The README's test command: builds the project's two virtual environments
# from nothing when needed, prepares the SmolLM2 test model once per machine
# and runs pytest with the given arguments in each environment:
#
# - .venv (scripts/setup_environment.sh), with heretic-llm 1.4.0 from the
#   package index: every test outside tests/master;
# - .venv-master (scripts/setup_master_environment.sh), with heretic's upstream
#   master (the scorer plugin API): the tests of the plugin path, tests/master.
#
# Each environment collects only its own tests (tests/conftest.py), so the
# same arguments go to both; an environment that the arguments give no test
# (pytest's exit status 5) does not count as a failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_environment.sh test
bash scripts/setup_master_environment.sh

.venv/bin/python -m development.smollm2

run_pytest() {
    local status=0
    "$1" -m pytest "${@:2}" || status=$?
    if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
        return "$status"
    fi
}

echo "Tests against heretic-llm 1.4.0 (.venv)"
run_pytest .venv/bin/python "$@"
echo "Tests of the plugin path against heretic master (.venv-master)"
run_pytest .venv-master/bin/python "$@"
