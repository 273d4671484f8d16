#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# Creates a second virtual environment, .venv-master, with heretic's upstream
# master (the host with the scorer plugin API, not on the package index) and
# this package (editable, with the "test" extra), so that the tests of the
# plugin path run against the real host (scripts/test.sh runs them there).
#
# heretic master comes from the wheel of commit 20b7bf7 in ../shared/wheels/
# beside the repository where that folder exists (it holds the wheel, its
# license and a README), and otherwise from the same commit on GitHub. heretic
# master declares torchvision, which has no build for the pinned CPU torch on
# the package index; heretic's text-model path does not need it, so it is
# removed again (see ../shared/wheels/README.md). Run after
# scripts/setup_environment.sh, whose .venv provides uv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

wheel="../shared/wheels/heretic_llm-1.4.0+master.20b7bf7-py3-none-any.whl"
if [ -f "$wheel" ]; then
    heretic_master="$wheel"
else
    heretic_master="heretic-llm @ git+https://github.com/p-e-w/heretic@20b7bf7"
fi

if [ ! -x .venv-master/bin/python ]; then
    echo "Creating the virtual environment of heretic master in .venv-master"
    python3 -m venv .venv-master
fi

# As in setup_environment.sh: nothing to do when neither the inputs nor this
# script changed since the last successful installation.
stamp_file=".venv-master/.heretic-tfkl-install-stamp"
stamp="$( (cat pyproject.toml setup.py scripts/setup_master_environment.sh; echo "$heretic_master") \
    | sha256sum | cut -d ' ' -f 1)"
if [ "$(cat "$stamp_file" 2>/dev/null || true)" = "$stamp" ] \
    && .venv-master/bin/python -c "import heretic.scorer, heretic_teacher_forced_kl" \
        2>/dev/null; then
    exit 0
fi

requirements=("torch==2.13.0" "$heretic_master" "-e" ".[test]")

install_with_uv() {
    [ -x .venv/bin/uv ] || return 1
    local find_links="${PIP_FIND_LINKS:-$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)}"
    local arguments=()
    local location
    for location in $find_links; do
        arguments+=("--find-links" "$location")
    done
    .venv/bin/uv pip install --quiet --compile-bytecode --python .venv-master/bin/python \
        "${arguments[@]}" "${requirements[@]}" \
        && .venv/bin/uv pip uninstall --quiet --python .venv-master/bin/python torchvision
}

install_with_pip() {
    .venv-master/bin/python -m pip install -qq "${requirements[@]}" \
        && .venv-master/bin/python -m pip uninstall -qq -y torchvision
}

echo "Installing heretic master ($heretic_master) and heretic-teacher-forced-kl[test] into .venv-master"
if ! install_with_uv; then
    echo "uv was not available or failed; installing with pip instead (slower)"
    install_with_pip
fi
echo "$stamp" > "$stamp_file"
