#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# The blind-spot computations that run for hours (docs/blind-spot.md), in
# three lanes, each with one torch thread per process:
#   opener:   build the opener model (once; idempotent), check its
#             preconditions (committed; the lane stops if one fails), then the
#             rank study on it;
#   original: the rank study on the original SmolLM2 (models 41 to 60), then
#             the selection test's damage measurements of docs/in-loop's trials;
#   in-loop:  step 3, heretic's search on the opener model in both arms
#             exactly as docs/blind-spot-plan.md fixes it (seeds 0 to 9, 30
#             trials, N = 16 at target 0.0038 against first-token KL at 0.01,
#             heretic's own prefix check), two heretic studies at a time, then
#             the plan's report (docs/blind-spot/in-loop/plan.md).
# Every step is resumable and commits its state to the current branch as it
# comes (--commit), so the script can be killed at any moment and started
# again with the same command; finished work is not redone (the precondition
# check is rerun only when its results are not committed yet). At the end of
# each rank study the rank report is rewritten from the state and committed.
#
# Usage, from the repository root, after scripts/setup_environment.sh test:
#   setsid nohup bash scripts/blind_spot_background.sh [both|opener|original|in-loop] \
#       > blind_spot_background.log 2>&1 < /dev/null &
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OMP_NUM_THREADS=1
export OMP_WAIT_POLICY=PASSIVE
python=.venv/bin/python

commit_paths() {
    # Commits only the given paths, retrying while another lane commits.
    local message="$1"
    shift
    local attempt
    for attempt in 1 2 3 4 5; do
        if git add -- "$@" && git commit -q -m "$message" -- "$@"; then
            return 0
        fi
        if git diff --quiet HEAD -- "$@" 2>/dev/null; then
            return 0
        fi
        sleep $((attempt * 3))
    done
    echo "not committed: $*"
}

report() {
    $python -m studies.blind_spot_rank_report \
        && commit_paths "Blind-spot rank report from the state so far" \
            docs/blind-spot/rank.md docs/blind-spot/rank.json
}

opener_lane() {
    $python -m development.opener_model || return 1
    if [ ! -f docs/blind-spot/preconditions.json ] \
        || ! git ls-files --error-unmatch docs/blind-spot/preconditions.json > /dev/null 2>&1; then
        $python -m studies.blind_spot_preconditions --require
        local status=$?
        commit_paths "Blind-spot preconditions of the opener model (measured)" \
            docs/blind-spot/preconditions.json docs/blind-spot/preconditions.md
        if [ "$status" -ne 0 ]; then
            echo "the opener model does not meet the plan's preconditions; no study starts"
            return 1
        fi
    fi
    $python -m studies.blind_spot_rank --model opener --commit
    report
}

original_lane() {
    $python -m studies.blind_spot_rank --model original --commit
    report
    $python -m studies.selection_test --commit
}

in_loop_lane() {
    $python -m studies.in_loop --model opener --arms first-token \
        --teacher-forced-arm 16:0.0038 --seeds 10 --trials 30 --startup-trials 10 \
        --prefix-check --output-dir docs/blind-spot/in-loop \
        --work-dir .blind-spot-in-loop --workers 2 --threads 1 --commit || return 1
    $python -m studies.blind_spot_in_loop_report \
        && commit_paths "Blind-spot step 3: the plan's report" \
            docs/blind-spot/in-loop/plan.md docs/blind-spot/in-loop/plan.json
}

case "${1:-both}" in
    opener) opener_lane ;;
    original) original_lane ;;
    both)
        opener_lane &
        first=$!
        original_lane &
        second=$!
        wait "$first" "$second"
        ;;
    in-loop) in_loop_lane ;;
    *)
        echo "usage: bash scripts/blind_spot_background.sh [both|opener|original|in-loop]" >&2
        exit 2
        ;;
esac
