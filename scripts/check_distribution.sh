#!/usr/bin/env bash
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
#
# Checks what a user gets from PyPI, from nothing: builds the sdist and the
# wheel (the wheel from the unpacked sdist, so a file missing from the sdist
# breaks the build), checks both with `twine check --strict` and their
# contents, installs the wheel into a fresh virtual environment, and runs
# `heretic-kl --version`, `heretic-kl --help`, `heretic-kl --print-config` and
# the README's library example (on SmolLM2-135M-Instruct, prepared as the
# tests prepare it; the only run of the example in CI, checked by
# `development/readme_example.py --check`) from there, outside the repository,
# in a folder whose config.toml, environment and command line heretic would
# reject. CI (`.ci/run`) runs it after the tests.
#
# Everything lives in a temporary folder that is removed at the end; set
# KEEP_DISTRIBUTION_CHECK=1 to keep it. The build tools (build, twine, uv)
# go into a throwaway environment, not into the one under test.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repository="$PWD"

# The environment under test must see the installed wheel, never the source tree.
unset PYTHONPATH
# Bytecode is compiled on first import and cached, for the modules that the
# checks import only: compiling all of heretic's dependency tree at install
# time would cost minutes for a throwaway environment.
unset PYTHONDONTWRITEBYTECODE
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

work="$(mktemp -d "${TMPDIR:-/tmp}/heretic-kl-distribution.XXXXXX")"
if [ "${KEEP_DISTRIBUTION_CHECK:-0}" = 1 ]; then
    echo "Keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi

step() {
    echo "[$(date +%H:%M:%S), ${SECONDS} s] $*"
}

# uv, as in scripts/setup_environment.sh, installs about three times faster
# than pip and reuses the cache of the tests' installation; pip takes over
# wherever uv is unavailable or fails. uv does not read pip's configuration,
# so pip's find-links locations (where this project's machines keep the local
# CPU torch wheel) are handed over explicitly.
step "Installing the build tools (uv, build, twine) into a throwaway environment"
python3 -m venv "$work/tools"
uv_arguments=()
if "$work/tools/bin/python" -m pip install -qq "uv>=0.5"; then
    find_links="${PIP_FIND_LINKS:-$("$work/tools/bin/python" -m pip config get global.find-links 2>/dev/null || true)}"
    for location in $find_links; do
        uv_arguments+=("--find-links" "$location")
    done
fi
uv_install() {
    [ -x "$work/tools/bin/uv" ] \
        && "$work/tools/bin/uv" pip install --quiet "${uv_arguments[@]}" "$@"
}
if ! uv_install --python "$work/tools/bin/python" "build>=1.2" "twine>=6"; then
    "$work/tools/bin/python" -m pip install -qq "build>=1.2" "twine>=6"
fi

step "Building the sdist and, from it, the wheel"
installer=()
if [ -x "$work/tools/bin/uv" ]; then
    installer=("--installer" "uv")
fi
"$work/tools/bin/python" -m build "${installer[@]}" --outdir "$work/dist" . \
    >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
sdist=("$work"/dist/*.tar.gz)
wheel=("$work"/dist/*.whl)

step "twine check --strict"
"$work/tools/bin/twine" check --strict "${sdist[@]}" "${wheel[@]}"

step "Checking what the sdist and the wheel hold"
"$work/tools/bin/python" - "${sdist[0]}" "${wheel[0]}" <<'PYTHON'
import sys
import tarfile
import zipfile

sdist_path, wheel_path = sys.argv[1:]
with tarfile.open(sdist_path) as sdist:
    # Each name without the leading "name-version/" folder.
    sdist_names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
with zipfile.ZipFile(wheel_path) as wheel:
    wheel_names = set(wheel.namelist())

package = "heretic_teacher_forced_kl"
problems = []
if f"{package}/py.typed" not in wheel_names:
    problems.append(f"the wheel lacks {package}/py.typed")
if f"src/{package}/py.typed" not in sdist_names:
    problems.append(f"the sdist lacks src/{package}/py.typed")
# config.default.toml: at the top of the sdist as of the repository, and inside
# the wheel's package, the same file.
with open("config.default.toml", "rb") as file:
    config = file.read()
with tarfile.open(sdist_path) as sdist:
    top = [name for name in sdist.getnames() if name.endswith("/config.default.toml")]
    if len(top) != 1 or top[0].count("/") != 1:
        problems.append(f"the sdist holds config.default.toml as {top}, not at its top")
    elif sdist.extractfile(top[0]).read() != config:
        problems.append("the sdist's config.default.toml differs from the repository's")
with zipfile.ZipFile(wheel_path) as wheel:
    if f"{package}/config.default.toml" not in wheel_names:
        problems.append(f"the wheel lacks {package}/config.default.toml")
    elif wheel.read(f"{package}/config.default.toml") != config:
        problems.append("the wheel's config.default.toml differs from the repository's")
prompt_files = [
    name for name in wheel_names if name.startswith(f"{package}/data/prompts/")
]
if len(prompt_files) != 4:
    problems.append(f"the wheel holds {len(prompt_files)} prompt files, expected 4")
tests = sorted(name for name in sdist_names if name.startswith("tests/"))
if tests:
    problems.append(f"the sdist ships tests without their helpers: {tests}")
if problems:
    sys.exit("Distribution contents: " + "; ".join(problems))
print(f"sdist: {len(sdist_names)} entries, wheel: {len(wheel_names)} entries, OK")
PYTHON

step "Installing the wheel into a fresh virtual environment"
python3 -m venv "$work/venv"
# Torch is pinned and asked for first (with pip) or together (with uv): on this
# project's machines that resolves to a local CPU wheel that pip's
# configuration points to, not to a multi-gigabyte CUDA build.
if ! uv_install --python "$work/venv/bin/python" "torch==2.13.0" "${wheel[0]}"; then
    echo "uv was not available or failed; installing with pip instead (slower)"
    "$work/venv/bin/python" -m pip install -qq --no-compile "torch==2.13.0"
    "$work/venv/bin/python" -m pip install -qq --no-compile "${wheel[0]}"
fi
echo "Installed: $(du -sh "$work/venv" | cut -f 1)"

# The model of the README's example: HERETIC_KL_EXAMPLE_MODEL when set, else
# SmolLM2-135M-Instruct, prepared (and cached per machine) by the project's
# environment as for the tests; after scripts/test.sh both take no time.
if [ -n "${HERETIC_KL_EXAMPLE_MODEL:-}" ]; then
    model="$HERETIC_KL_EXAMPLE_MODEL"
else
    step "Preparing SmolLM2-135M-Instruct"
    bash scripts/setup_environment.sh test
    model="$(.venv/bin/python -m development.smollm2)"
fi

# Every command runs in an empty folder outside the repository.
mkdir "$work/run"
"$work/tools/bin/python" -m development.readme_example --output "$work/run/readme_example.py"
cd "$work/run"

step "heretic-kl --version"
version_line="$("$work/venv/bin/heretic-kl" --version </dev/null)"
echo "$version_line"
expected_version="$(basename "${wheel[0]}" | cut -d - -f 2)"
case "$version_line" in
    "heretic-teacher-forced-kl $expected_version, heretic-llm "[0-9]*) ;;
    *) echo "Expected the version $expected_version and heretic-llm's"; exit 1 ;;
esac

step "heretic-kl --help"
"$work/venv/bin/heretic-kl" --help </dev/null >help.txt
head -n 3 help.txt
grep -q "usage: heretic-kl .* MODEL" help.txt
# heretic's own options follow the launcher's.
grep -q -- "--n-trials" help.txt

step "heretic-kl --print-config"
"$work/venv/bin/heretic-kl" --print-config </dev/null >config.default.toml
grep -q "^\[scorer.TeacherForcedKL\]" config.default.toml

step "The README's library example on $model"
"$work/venv/bin/python" - <<'PYTHON'
import heretic_teacher_forced_kl

# The package under test is the installed wheel, not the source tree.
assert "site-packages" in heretic_teacher_forced_kl.__file__, (
    heretic_teacher_forced_kl.__file__
)
PYTHON
# Run from a folder that heretic's own settings would reject three ways (a
# config.toml with a bad value, a bad HERETIC_ setting, a flag heretic does not
# know): the example's settings must ignore all three, as the README says.
mkdir hostile
cp readme_example.py hostile/
printf 'n_trials = "not a number"\n' > hostile/config.toml
(
    cd hostile
    HERETIC_KL_EXAMPLE_MODEL="$model" HERETIC_BATCH_SIZE="not a number" \
        "$work/venv/bin/python" readme_example.py --flag-heretic-does-not-know </dev/null \
        | tee ../example.txt | tail -n 3
)
(cd "$repository" && python3 -m development.readme_example --check "$work/run/example.txt")

cd "$repository"
step "The distribution check passed"
