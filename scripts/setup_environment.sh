#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# Creates the project's virtual environment in .venv when it is missing and
# installs the package (editable) with the optional dependency groups named as
# arguments (by default "test"). Both README commands (scripts/main_job.sh and
# scripts/test.sh) ask for "test", which holds what the repository's scripts
# need beyond the package (gguf to convert the SmolLM2 model, pytest,
# matplotlib), so that they share one installation.
#
# The installation uses uv, installed into .venv by pip, because uv installs
# heretic-llm's large dependency tree (lm-eval, datasets, bitsandbytes and
# their own dependencies) about three times faster than pip on two cores; pip
# takes over when uv cannot be installed or fails. Both compile bytecode at
# install time: where PYTHONDONTWRITEBYTECODE is set (as on this project's
# machines), Python would otherwise compile torch and transformers from source
# again in every process, about 20 seconds each time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

extras="$(IFS=,; echo "${*:-test}")"

if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment in .venv"
    python3 -m venv .venv
fi

# The installation is skipped when neither pyproject.toml, setup.py nor this
# script has changed since the last successful one for the same extras and the
# package is still installed: the install is editable, so edits to the source need no
# reinstall, and even an installer with nothing to do takes seconds.
stamp_file=".venv/.heretic-tfkl-install-stamp-${extras//,/-}"
stamp="$(cat pyproject.toml setup.py scripts/setup_environment.sh | sha256sum | cut -d ' ' -f 1)"
if [ "$(cat "$stamp_file" 2>/dev/null || true)" = "$stamp" ] \
    && .venv/bin/python -c \
        "import importlib.metadata as metadata; metadata.version('heretic-teacher-forced-kl')" \
        2>/dev/null; then
    exit 0
fi

# Torch is pinned and asked for together with the package: on this project's
# machines that resolves to a local CPU wheel that pip's configuration points
# to (find-links), whereas a plain "torch" requirement would pull a
# multi-gigabyte CUDA build from the package index.
requirements=("torch==2.13.0" "-e" ".[${extras}]")

install_with_uv() {
    .venv/bin/python -m pip install -qq --no-compile "uv>=0.5" || return 1
    # uv does not read pip's configuration, so pip's find-links locations
    # (where the local torch wheel lies) are handed over explicitly.
    local find_links="${PIP_FIND_LINKS:-$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)}"
    local arguments=()
    local location
    for location in $find_links; do
        arguments+=("--find-links" "$location")
    done
    .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python \
        "${arguments[@]}" "${requirements[@]}"
}

install_with_pip() {
    .venv/bin/python -m pip install -qq "${requirements[@]}"
}

echo "Installing heretic-teacher-forced-kl[${extras}] and its dependencies into .venv"
if ! install_with_uv; then
    echo "uv was not available or failed; installing with pip instead (slower)"
    install_with_pip
fi
echo "$stamp" > "$stamp_file"
