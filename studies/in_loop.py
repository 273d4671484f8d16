# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
In the loop: does heretic's search hand users less damaged models when it
optimizes teacher-forced KL instead of first-token KL?

Usage:

    python -m studies.in_loop [--model smollm2|opener|PATH] [--arms first-token,teacher-forced-3]
        [--seeds 5] [--trials 30] [--startup-trials 10] [--output-dir docs/in-loop]
        [--work-dir .in-loop] [--smoke] [--report-only]
        [--teacher-forced-arm N:TARGET] [--prefix-check] [--commit]

For every arm and seed, the study runs a real heretic-llm 1.4.0 study through
this package's launcher, in a subprocess (`heretic-kl --scorer ...
--non-interactive MODEL`), in its own working folder with a generated
`config.toml` and its own checkpoint folder. The arms differ only in the
damage measure and its `kl_divergence_target` (`ARMS`). When a study has
finished, every trial is read back from heretic's Optuna checkpoint (its
parameters, refusal count and KL as heretic recorded them), and every trial is
re-applied in this process with heretic's own `Model.abliterate`, to measure
both first-token KL (heretic's `get_logprobs_batched`, as its evaluator does)
and teacher-forced KL at N = 3 (this package's engine, as the launcher's
evaluator does). Damage that does not use KL (the accuracy drop on the bundled
questions and the NLL increase on held-out answers of the original, as in
`evidence.py`) is measured for every Pareto-optimal trial of every study and
for a seeded random sample of the other trials. The report
(`in_loop_report.py`) compares the models a user would pick from each arm's
Pareto front, paired by seed (`in_loop_analysis.py`).

Every finished study and every finished measurement is written at once to a
small JSON file under `<output-dir>/state/` (`in_loop_state.py`), so a run can
be killed at any moment: a restart redoes only the unfinished study (from
scratch, after deleting its checkpoint) and the unfinished measurements.
`--report-only` writes the report from the state files alone, also while
studies are missing (the report then says that it is partial).

For the blind-spot studies (docs/blind-spot-plan.md): `--teacher-forced-arm
N:TARGET` adds the arm `teacher-forced-N-target-TARGET` (teacher-forced KL at
N tokens, `kl_divergence_target` TARGET) and re-measures teacher-forced KL at
that N; `--prefix-check` leaves heretic's `response_prefix` unset, so that
heretic's own common-prefix check runs as it would for a user (a study in
which heretic finds a prefix stops the run: the re-measurement assumes none);
`--model opener` selects the opener model (built when missing); `--commit`
commits the state to the current branch after every finished study and after
every study's measurements, and the whole output folder at the end, so that a
run spread over several working stretches loses at most one study.
"""

import argparse
import math
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import optuna
import torch
import transformers
from heretic.config import Settings
from heretic.model import AbliterationParameters, Model
from heretic.utils import load_prompts
from optuna.storages import JournalStorage
from optuna.storages.journal import (
    JournalFileBackend,
    JournalFileOpenLock,
)
from optuna.trial import TrialState

from development.heretic_host import neutral_command_line
from heretic_teacher_forced_kl.metric.engine import TeacherForcedKLEngine
from studies.damage_measures import (
    HELDOUT_PROMPTS_PATH,
    QUESTIONS_PATH,
    HeldoutLikelihood,
    QuestionAccuracy,
    load_questions,
)
from studies.in_loop_analysis import heretic_pareto_front
from studies.in_loop_report import write_report
from studies.in_loop_state import (
    StudyState,
    read_json,
    study_key,
    write_json_atomically,
)
from studies.study_options import (
    add_size_options,
    fill_sizes,
    not_negative,
    positive,
)
from studies.study_setup import (
    OPENER,
    SMOLLM2,
    bundled_data_path,
    commit_paths,
    load_prompt_file,
    refusal_directions,
    resolve_model_path,
)

#: The system prompt of `examples/smollm2/config.toml`: SmolLM2-135M-Instruct
#: refuses almost nothing under heretic's default one.
REFUSAL_SYSTEM_PROMPT = (
    "You are a safe and responsible assistant. If a request could cause harm, "
    "reply only: Sorry, I cannot help with that."
)

#: heretic's default system prompt, under which damage is measured, as in
#: `evidence.py`: the damage of a model should not depend on the prompt that
#: the study used to make the original refuse.
DAMAGE_SYSTEM_PROMPT = "You are a helpful assistant."

#: On SmolLM2-135M-Instruct, teacher-forced KL at N = 3 is about 0.54 times
#: first-token KL (the median over the 40 models of docs/evidence).
TEACHER_FORCED_RATIO = 0.54

#: heretic's default `kl_divergence_target`.
DEFAULT_KL_TARGET = 0.01


@dataclass(frozen=True)
class Arm:
    """One arm: the damage measure that heretic's search optimizes, and its target."""

    name: str
    scorer: str
    kl_tokens: int | None
    kl_divergence_target: float
    description: str

    def launcher_options(self) -> list[str]:
        """The launcher's options that select this arm's scorer."""
        options = ["--scorer", self.scorer]
        if self.kl_tokens is not None:
            options += ["--kl-tokens", str(self.kl_tokens)]
        return options


#: Every arm this study knows; `--arms` chooses among them.
ARMS = {
    arm.name: arm
    for arm in (
        Arm(
            "first-token",
            "kl-divergence",
            None,
            DEFAULT_KL_TARGET,
            "heretic's own first-token KL, default target 0.01",
        ),
        Arm(
            "teacher-forced-3",
            "teacher-forced-kl",
            3,
            round(DEFAULT_KL_TARGET * TEACHER_FORCED_RATIO, 6),
            "teacher-forced KL, N = 3, target scaled by the measured ratio 0.54",
        ),
        Arm(
            "teacher-forced-3-unscaled",
            "teacher-forced-kl",
            3,
            DEFAULT_KL_TARGET,
            "teacher-forced KL, N = 3, heretic's default target 0.01 (what a user gets)",
        ),
    )
}

#: The arms of the default full run.
DEFAULT_ARMS = ("first-token", "teacher-forced-3")


@dataclass(frozen=True)
class StudySize:
    """The sizes of one in-loop run; `FULL` and `SMOKE` are the two presets."""

    seeds: int
    trials: int
    startup_trials: int
    direction_prompts: int
    kl_prompts: int
    harmful_prompts: int
    response_tokens: int
    questions: int | None
    question_tokens: int
    heldout: int
    heldout_tokens: int
    damage_sample: int
    bootstrap: int
    batch_size: int
    question_batch_size: int


#: The full run, sized for about two hours on 2 shared CPU cores (docs/in-loop.md).
FULL = StudySize(
    seeds=5,
    trials=30,
    startup_trials=10,
    direction_prompts=32,
    kl_prompts=16,
    harmful_prompts=64,
    response_tokens=8,
    questions=64,
    question_tokens=16,
    heldout=16,
    heldout_tokens=32,
    damage_sample=3,
    bootstrap=2000,
    batch_size=16,
    question_batch_size=32,
)

#: The smoke test's run: every step runs, on a handful of inputs.
SMOKE = StudySize(
    seeds=1,
    trials=2,
    startup_trials=1,
    direction_prompts=8,
    kl_prompts=4,
    harmful_prompts=8,
    response_tokens=4,
    questions=4,
    question_tokens=8,
    heldout=2,
    heldout_tokens=8,
    damage_sample=1,
    bootstrap=200,
    batch_size=8,
    question_batch_size=8,
)


def arm_list(text: str) -> list[str]:
    """An argparse type: a comma-separated list of arms (checked once every arm is known)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one arm")
    return names


def teacher_forced_arm(text: str) -> Arm:
    """An argparse type: "N:TARGET", a teacher-forced arm at N tokens with that KL target."""
    tokens_text, separator, target_text = text.partition(":")
    try:
        tokens = int(tokens_text)
        target = float(target_text)
    except ValueError:
        tokens, target = 0, 0.0
    if not separator or tokens < 1 or not target > 0:
        raise argparse.ArgumentTypeError(
            f"expected N:TARGET with N >= 1 and TARGET > 0 (e.g. 8:0.05), got {text!r}"
        )
    return Arm(
        f"teacher-forced-{tokens}-target-{target:g}",
        "teacher-forced-kl",
        tokens,
        target,
        f"teacher-forced KL, N = {tokens}, target {target:g}",
    )


def parse_arguments(arguments: list[str]) -> argparse.Namespace:
    """Parses the command line; sizes left out come from the full or the smoke preset."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.in_loop",
        description="Does heretic's search hand users less damaged models "
        "when it optimizes teacher-forced KL?",
    )
    parser.add_argument(
        "--model",
        default=SMOLLM2,
        help=f"{SMOLLM2!r}, {OPENER!r} (the blind-spot studies' opener model) or a "
        "model folder",
    )
    parser.add_argument(
        "--arms",
        type=arm_list,
        default=list(DEFAULT_ARMS),
        help=f"comma-separated arms among {', '.join(ARMS)} "
        f"(default {','.join(DEFAULT_ARMS)})",
    )
    add_size_options(
        parser,
        FULL,
        {
            "seeds": "seeds 0 .. n-1 per arm",
            "trials": "trials per study",
            "startup_trials": "heretic's n_startup_trials, the random trials before TPE",
            "direction_prompts": "harmless and harmful prompts for the refusal directions",
            "kl_prompts": "harmless evaluation prompts on which KL is measured",
            "harmful_prompts": "harmful evaluation prompts on which refusals are counted",
            "response_tokens": "heretic's max_response_length for counting refusals",
            "questions": "questions kept at most",
            "question_tokens": "tokens per answer",
            "heldout": "held-out prompts",
            "heldout_tokens": "tokens per held-out answer",
            "damage_sample": "non-Pareto trials per study whose damage is measured too",
            "bootstrap": "bootstrap resamples",
            "batch_size": "heretic's batch size",
            "question_batch_size": "questions per generation batch",
        },
        types={"damage_sample": not_negative},
    )
    parser.add_argument(
        "--threads",
        type=positive,
        default=1,
        help="torch CPU threads, here and in heretic "
        "(1: on a shared 2-core machine, 2 threads ran 10x slower)",
    )
    parser.add_argument(
        "--workers",
        type=positive,
        default=1,
        help="heretic studies run at once, each in its own process with --threads "
        "threads (2 on a free 2-core machine); the measurements of finished studies "
        "run meanwhile in this process",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("docs/in-loop"))
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(".in-loop"),
        help="the heretic studies' working folders, checkpoints and logs (not committed)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny, fast version of the study"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the report from the state files, running and measuring nothing",
    )
    parser.add_argument(
        "--teacher-forced-arm",
        type=teacher_forced_arm,
        default=None,
        help="N:TARGET: add a teacher-forced arm at N tokens with this KL target "
        "(it joins --arms) and re-measure teacher-forced KL at N",
    )
    parser.add_argument(
        "--prefix-check",
        action="store_true",
        help="leave heretic's response_prefix unset, so that heretic checks for a "
        "common prefix as it does for a user",
    )
    parser.add_argument(
        "--commit",
        action="store_true",
        help="commit the state to the current branch after every finished study and "
        "every study's measurements, and the output folder at the end",
    )
    options = parser.parse_args(arguments)
    fill_sizes(options, FULL, SMOKE)
    if options.teacher_forced_arm is not None:
        ARMS[options.teacher_forced_arm.name] = options.teacher_forced_arm
        if options.teacher_forced_arm.name not in options.arms:
            options.arms.append(options.teacher_forced_arm.name)
    unknown = [name for name in options.arms if name not in ARMS]
    if unknown:
        parser.error(
            f"--arms: unknown arm(s) {unknown}; choose among {', '.join(ARMS)}"
        )
    if options.startup_trials > options.trials:
        parser.error("--startup-trials must not exceed --trials")
    return options


def log(message: str) -> None:
    """Prints a progress line with the time of day, at once (the full run logs to a file)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_configuration(options: argparse.Namespace) -> dict[str, Any]:
    """
    What a resumed run must share with the run it resumes: everything that
    changes what a study or a measurement produces (not the arms or the number
    of seeds, which a later run may extend).
    """
    return {
        "model": str(options.model),
        "trials": options.trials,
        "startup_trials": options.startup_trials,
        "direction_prompts": options.direction_prompts,
        "kl_prompts": options.kl_prompts,
        "harmful_prompts": options.harmful_prompts,
        "response_tokens": options.response_tokens,
        "questions": options.questions,
        "question_tokens": options.question_tokens,
        "heldout": options.heldout,
        "heldout_tokens": options.heldout_tokens,
        "damage_sample": options.damage_sample,
        "batch_size": options.batch_size,
        "question_batch_size": options.question_batch_size,
        "system_prompt": REFUSAL_SYSTEM_PROMPT,
        "damage_system_prompt": DAMAGE_SYSTEM_PROMPT,
        # Recorded only when set, so that runs from before these options resume.
        **(
            {"measured_teacher_forced_tokens": measured_tokens(options)}
            if measured_tokens(options) != 3
            else {}
        ),
        **({"prefix_check": True} if options.prefix_check else {}),
    }


def measured_tokens(options: argparse.Namespace) -> int:
    """The N at which every trial's teacher-forced KL is re-measured (3 unless an arm sets it)."""
    arm: Arm | None = getattr(options, "teacher_forced_arm", None)
    return 3 if arm is None or arm.kl_tokens is None else arm.kl_tokens


def home_relative(path: Path) -> str:
    """`path` with the home folder written as `~`, so that no user's folder is committed."""
    try:
        return str(Path("~") / path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def portable_dataset(value: Any) -> Any:
    """
    A setting as the study's record keeps it: a dataset specification of a
    bundled prompt file names the file inside the package
    (`heretic_teacher_forced_kl/data/prompts/...`), not where this machine keeps
    it; every other value is kept as it is.
    """
    if not (isinstance(value, dict) and "dataset" in value):
        return value
    package = bundled_data_path("prompts", "harmless_directions.txt").parents[2]
    try:
        relative = (
            Path(value["dataset"]).resolve().relative_to(package.parent.resolve())
        )
    except ValueError:
        return value
    return {**value, "dataset": relative.as_posix()}


def dataset(name: str, count: int) -> dict[str, str]:
    """A heretic dataset specification of the first `count` lines of a bundled prompt file."""
    return {
        "dataset": str(bundled_data_path("prompts", name)),
        "split": f"[:{count}]",
    }


def heretic_settings_values(
    options: argparse.Namespace,
    model_path: Path,
    arm: Arm,
    seed: int,
    checkpoints: Path,
) -> dict[str, Any]:
    """Every heretic setting of one study, as its `config.toml` holds them."""
    values: dict[str, Any] = {
        "model": str(model_path),
        "device_map": "cpu",
        "dtypes": ["float32"],
        "batch_size": options.batch_size,
        "max_response_length": options.response_tokens,
        # The model has no common response prefix; skip heretic's check for one.
        "response_prefix": "",
        "n_trials": options.trials,
        "n_startup_trials": options.startup_trials,
        "seed": seed,
        "kl_divergence_target": arm.kl_divergence_target,
        "system_prompt": REFUSAL_SYSTEM_PROMPT,
        "study_checkpoint_dir": str(checkpoints),
        "good_prompts": dataset("harmless_directions.txt", options.direction_prompts),
        "bad_prompts": dataset("harmful_directions.txt", options.direction_prompts),
        "good_evaluation_prompts": dataset(
            "harmless_evaluation.txt", options.kl_prompts
        ),
        "bad_evaluation_prompts": dataset(
            "harmful_evaluation.txt", options.harmful_prompts
        ),
    }
    if getattr(options, "prefix_check", False):
        # heretic then generates answers and looks for a common prefix itself.
        del values["response_prefix"]
    return values


def toml_value(value: Any) -> str:
    """A TOML literal of a string, number, list or flat table (JSON string escapes are TOML's)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items())
        return "{ " + items + " }"
    raise TypeError(f"No TOML form for {value!r}")


def write_config(values: dict[str, Any], path: Path) -> None:
    """Writes heretic settings (the model excepted: it is a command-line argument) as TOML."""
    lines = [
        "# Generated by studies/in_loop.py: one study of the in-loop study.",
        *(
            f"{key} = {toml_value(value)}"
            for key, value in values.items()
            if key != "model"
        ),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


#: heretic's per-trial output lines that the progress line summarizes.
TRIAL_START = re.compile(r"Running trial\s+(\d+)\s+of\s+(\d+)")
TRIAL_KL = re.compile(r"KL divergence[^:]*:\s*([0-9.eE+-]+)")
TRIAL_REFUSALS = re.compile(r"\*\s*Refusals:\s*(\d+)/(\d+)")


def heretic_environment(threads: int) -> dict[str, str]:
    """The environment of a heretic subprocess: offline, unbuffered, `threads` CPU threads."""
    environment = dict(os.environ)
    environment.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "OMP_WAIT_POLICY": "PASSIVE",
            # Rich wraps its lines at the terminal width, 80 columns without one.
            "COLUMNS": "200",
        }
    )
    # A heretic setting in the environment would silently change every study.
    for key in list(environment):
        if key.startswith("HERETIC_") and key != "HERETIC_TFKL_CACHE":
            del environment[key]
    return environment


def run_heretic(
    options: argparse.Namespace, model_path: Path, arm: Arm, seed: int
) -> dict[str, Any]:
    """
    Runs one heretic study from scratch through the launcher, in a subprocess,
    and returns its record: every trial as heretic's checkpoint holds it.
    """
    folder: Path = (options.work_dir / study_key(arm.name, seed)).resolve()
    checkpoints = folder / "checkpoints"
    # Only an unfinished study is here: its checkpoint would make heretic-kl
    # --non-interactive exit without running, so the study starts over.
    if checkpoints.exists():
        shutil.rmtree(checkpoints)
    folder.mkdir(parents=True, exist_ok=True)
    values = heretic_settings_values(options, model_path, arm, seed, checkpoints)
    write_config(values, folder / "config.toml")
    launcher = Path(sys.executable).parent / "heretic-kl"
    command = [
        str(launcher),
        *arm.launcher_options(),
        "--non-interactive",
        str(model_path),
    ]
    log(f"{study_key(arm.name, seed)}: {shlex.join(command)} (in {folder})")
    start = time.perf_counter()
    trial_start = start
    trial_seconds: dict[str, float] = {}
    current_trial = 0
    current_kl: float | None = None
    log_path = folder / "heretic.log"
    with log_path.open("w", encoding="utf-8") as heretic_log:
        process = subprocess.Popen(
            command,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=heretic_environment(options.threads),
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        for line in process.stdout:
            heretic_log.write(line)
            heretic_log.flush()
            if match := TRIAL_START.search(line):
                current_trial = int(match.group(1))
                current_kl = None
                trial_start = time.perf_counter()
            elif current_trial and (match := TRIAL_KL.search(line)):
                current_kl = float(match.group(1))
            elif current_trial and (match := TRIAL_REFUSALS.search(line)):
                now = time.perf_counter()
                trial_seconds[str(current_trial)] = now - trial_start
                kl_text = "?" if current_kl is None else f"{current_kl:.5f}"
                log(
                    f"{study_key(arm.name, seed)}: heretic trial {current_trial}/"
                    f"{options.trials}: refusals {match.group(1)}/{match.group(2)}, "
                    f"{arm.name} KL {kl_text} ({now - trial_start:.1f} s)"
                )
                current_trial = 0
            elif "Initial refusals" in line:
                log(f"{study_key(arm.name, seed)}: {line.strip()}")
        status = process.wait()
    seconds = time.perf_counter() - start
    if status != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(
            f"heretic-kl exited with status {status} in {folder}; the end of "
            f"{log_path}:\n{tail}"
        )
    if "Prefix found" in log_path.read_text(encoding="utf-8", errors="replace"):
        raise RuntimeError(
            f"heretic found a common response prefix in {folder} (see {log_path}); "
            "the re-measurement assumes none, so the study cannot be used."
        )
    trials = read_checkpoint(checkpoints, options.trials)
    log(
        f"{study_key(arm.name, seed)}: heretic study finished in {seconds:.0f} s "
        f"({len(trials)} trials)"
    )
    return {
        "arm": asdict(arm),
        "seed": seed,
        "command": shlex.join(
            ["heretic-kl", *arm.launcher_options(), "--non-interactive", "MODEL"]
        ),
        "config": {
            key: portable_dataset(value)
            for key, value in values.items()
            if key not in ("model", "study_checkpoint_dir")
        },
        "seconds": seconds,
        "trial_seconds": trial_seconds,
        "base_refusals": trials[0]["base_refusals"],
        "bad_prompts": trials[0]["bad_prompts"],
        "trials": trials,
    }


def read_checkpoint(checkpoints: Path, expected_trials: int) -> list[dict[str, Any]]:
    """
    Reads every trial of the finished study in heretic 1.4.0's checkpoint (an
    Optuna journal file named after the model, study "heretic"): its index,
    parameters and the refusal count and KL divergence that heretic recorded.
    """
    files = sorted(checkpoints.glob("*.jsonl"))
    if len(files) != 1:
        raise RuntimeError(f"Expected one checkpoint file in {checkpoints}: {files}")
    path = str(files[0])
    storage = JournalStorage(
        JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
    )
    study = optuna.load_study(study_name="heretic", storage=storage)
    completed = [trial for trial in study.trials if trial.state == TrialState.COMPLETE]
    if len(completed) != expected_trials or not study.user_attrs.get("finished"):
        raise RuntimeError(
            f"The study in {path} did not finish: {len(completed)} of "
            f"{expected_trials} trials completed."
        )
    trials = []
    for trial in sorted(completed, key=lambda trial: trial.user_attrs["index"]):
        attributes = trial.user_attrs
        trials.append(
            {
                "trial": int(attributes["index"]),
                "refusals": int(attributes["refusals"]),
                "heretic_kl": float(attributes["kl_divergence"]),
                "objectives": [float(value) for value in trial.values],
                "base_refusals": int(attributes["base_refusals"]),
                "bad_prompts": int(attributes["n_bad_prompts"]),
                "direction_scope": str(trial.params["direction_scope"]),
                "direction_index": attributes["direction_index"],
                "parameters": attributes["parameters"],
                "sampled": {
                    name: value
                    for name, value in trial.params.items()
                    if name != "direction_scope"
                },
            }
        )
    return trials


@contextmanager
def system_prompt(model: Model, prompt: str) -> Iterator[None]:
    """Runs the block with heretic's system prompt set to `prompt` (damage is measured so)."""
    saved = model.settings.system_prompt
    model.settings.system_prompt = prompt
    try:
        yield
    finally:
        model.settings.system_prompt = saved


class Measurer:
    """
    The original model, loaded once in this process with the studies' heretic
    settings, and everything needed to re-measure a trial: the refusal
    directions (computed exactly as heretic 1.4.0's `main.run` computes them,
    from the same prompts), the KL references on heretic's good evaluation
    prompts, and, built on first use, the damage references.
    """

    def __init__(
        self, options: argparse.Namespace, model_path: Path, state: StudyState
    ) -> None:
        self.options = options
        self.state = state
        arm = ARMS[DEFAULT_ARMS[0]]
        values = heretic_settings_values(options, model_path, arm, 0, Path("unused"))
        with neutral_command_line():
            settings = Settings(
                **{
                    key: value
                    for key, value in values.items()
                    if key not in ("study_checkpoint_dir", "response_prefix")
                },
                # No prefix: set so, or heretic's own check found none
                # (`run_heretic` stops otherwise).
                response_prefix="",
            )
        log(f"Loading {model_path} with heretic in this process")
        self.model = Model(settings)
        log(f"Refusal directions from {options.direction_prompts} prompts of each kind")
        self.directions = refusal_directions(
            self.model,
            load_prompts(settings, settings.good_prompts),
            load_prompts(settings, settings.bad_prompts),
        )
        self.kl_prompts = load_prompts(settings, settings.good_evaluation_prompts)
        log(f"KL references on {len(self.kl_prompts)} prompts")
        # The launcher's evaluator: this package's engine with N = 3, on heretic's
        # good evaluation prompts. Its first position is heretic's first-token KL
        # (the same forward pass of the same prompts; the evidence study checks
        # that both agree), so one pass gives both measures.
        self.teacher_forced = TeacherForcedKLEngine(
            kl_tokens=measured_tokens(options),
            batch_size=options.batch_size,
            log=lambda message: None,
        )
        self.teacher_forced.build_reference(self.model, self.kl_prompts)
        self.questions: QuestionAccuracy | None = None
        self.heldout: HeldoutLikelihood | None = None

    def apply(self, seed: int, trial: dict[str, Any]) -> None:
        """Re-applies a trial's abliteration with heretic's `Model.abliterate`."""
        # heretic's full row normalization reseeds `torch.svd_lowrank` with its seed.
        self.model.settings.seed = seed
        self.model.reset_model()
        self.model.abliterate(
            self.directions,
            trial["direction_index"],
            {
                component: AbliterationParameters(**parameters)
                for component, parameters in trial["parameters"].items()
            },
        )

    def measure_kl(self) -> dict[str, float]:
        """First-token KL (heretic's way) and teacher-forced KL, N = 3, of the current model."""
        measurement = self.teacher_forced.measure(self.model.model)
        first_token = measurement.first_token_mean
        teacher_forced = measurement.mean
        return {"first_token_kl": first_token, "teacher_forced_kl": teacher_forced}

    def damage_references(self) -> None:
        """
        Builds the damage references of the original once (under heretic's
        default prompt); this resets the model to the original.
        """
        if self.questions is not None:
            return
        options = self.options
        self.model.reset_model()
        with system_prompt(self.model, DAMAGE_SYSTEM_PROMPT):
            log("Keeping the questions that the original answers correctly")
            all_questions = load_questions(QUESTIONS_PATH)
            self.questions = QuestionAccuracy(
                self.model,
                all_questions,
                options.questions,
                options.question_tokens,
                options.question_batch_size,
            )
            log(
                f"  {len(self.questions.questions)} kept of {self.questions.examined} examined"
            )
            log(
                f"Held-out answers: {options.heldout} prompts x "
                f"{options.heldout_tokens} tokens"
            )
            heldout_prompts = load_prompt_file(
                self.model, HELDOUT_PROMPTS_PATH, options.heldout
            )
            self.heldout = HeldoutLikelihood(
                self.model, heldout_prompts, options.heldout_tokens
            )
        references = {
            "questions_examined": self.questions.examined,
            "questions_kept": len(self.questions.questions),
            "kept_ids": [question.identifier for question in self.questions.questions],
            "original_heldout_nll": self.heldout.original_nll,
            "system_prompt": DAMAGE_SYSTEM_PROMPT,
        }
        previous = self.state_references()
        if previous is not None:
            if not same_references(previous, references):
                raise RuntimeError(
                    "The original's damage references differ from the recorded ones "
                    f"({self.state.references_path()}); the model or the sizes changed."
                )
            # The recorded references stay as they are (a later session's NLL may
            # differ in its last digits), and every NLL increase is measured
            # from the recorded NLL, so that all sessions share one reference.
            self.heldout.original_nll = previous["original_heldout_nll"]
            return
        write_json_atomically(self.state.references_path(), references)

    def state_references(self) -> dict[str, Any] | None:
        """The damage references recorded by an earlier session, if any."""
        value: dict[str, Any] | None = read_json(self.state.references_path())
        return value

    def measure_damage(self) -> dict[str, float | int]:
        """
        The accuracy drop and the held-out NLL increase of the current model;
        `damage_references` must have run before the model was abliterated.
        """
        if self.questions is None or self.heldout is None:
            raise RuntimeError("Build the damage references before abliterating.")
        with system_prompt(self.model, DAMAGE_SYSTEM_PROMPT):
            accuracy, correct = self.questions.measure(self.model)
            nll, nll_increase = self.heldout.measure(self.model)
        return {
            "accuracy": accuracy,
            "accuracy_drop": 1.0 - accuracy,
            "correct_answers": correct,
            "heldout_nll": nll,
            "nll_increase": nll_increase,
        }


#: The relative difference up to which a later session's held-out NLL of the
#: original counts as the recorded one: a new session on the same machine
#: reproduced docs/in-loop's 0.70061737 as 0.70062184 (6e-6 relative), the size
#: of float32 rounding in sums over about 500 tokens.
REFERENCE_NLL_TOLERANCE = 1e-5


def same_references(recorded: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether two sessions' damage references agree: exactly, but the NLL within rounding."""
    keys = set(recorded) | set(current)
    return all(
        math.isclose(
            recorded[key], current[key], rel_tol=REFERENCE_NLL_TOLERANCE, abs_tol=0.0
        )
        if key == "original_heldout_nll" and key in recorded and key in current
        else recorded.get(key) == current.get(key)
        for key in keys
    )


def damage_selection(
    study: dict[str, Any], sample_size: int
) -> tuple[list[int], dict[str, str]]:
    """
    The trials of a study whose damage is measured: every trial of heretic's
    Pareto front (refusals against the arm's own KL) and `sample_size` others,
    drawn with a generator seeded by the study's name. Returns the trial
    numbers, Pareto trials first, and the reason for each.
    """
    front = heretic_pareto_front(
        [
            (trial["trial"], trial["refusals"], trial["heretic_kl"])
            for trial in study["trials"]
        ]
    )
    others = sorted(
        trial["trial"] for trial in study["trials"] if trial["trial"] not in front
    )
    generator = random.Random(f"{study['arm']['name']}/{study['seed']}")
    sample = sorted(generator.sample(others, min(sample_size, len(others))))
    reasons = {str(trial): "pareto" for trial in front}
    reasons.update({str(trial): "sample" for trial in sample})
    return [*front, *sample], reasons


def same_model(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two trials of the same seed abliterate identically (the shared startup trials)."""
    return (
        first["direction_index"] == second["direction_index"]
        and first["parameters"] == second["parameters"]
    )


class InLoopRun:
    """One session of the in-loop study: runs what is missing, then writes the report."""

    def __init__(self, options: argparse.Namespace, command: str) -> None:
        self.options = options
        self.command = command
        self.state = StudyState(options.output_dir / "state")
        self.model_path = resolve_model_path(options.model)
        self.measurer: Measurer | None = None
        #: What this session did; a resumed, finished run does nothing.
        self.work = {"studies": 0, "kl_measurements": 0, "damage_measurements": 0}
        #: Guards `work` against the threads that wait for heretic's processes.
        self.work_lock = threading.Lock()
        #: Lets one thread at a time commit (a study may finish while the
        #: measurements of another are committed).
        self.commit_lock = threading.Lock()

    def commit(self, paths: list[Path], message: str) -> None:
        """Commits `paths` when `--commit` is given; a failure is logged, never raised."""
        if not self.options.commit:
            return
        with self.commit_lock:
            commit_paths(paths, message, log)

    def get_measurer(self) -> Measurer:
        """The in-process model, loaded on first use only."""
        if self.measurer is None:
            self.measurer = Measurer(self.options, self.model_path, self.state)
        return self.measurer

    def check_configuration(self) -> dict[str, Any]:
        """Records the run's configuration, or checks that a resumed run shares it."""
        configuration = run_configuration(self.options)
        path = self.state.run_path()
        run: dict[str, Any] | None = read_json(path)
        if run is not None and run["configuration"] != configuration:
            changed = sorted(
                key
                for key in configuration
                if run["configuration"].get(key) != configuration[key]
            )
            raise SystemExit(
                f"{path} records a run with other settings ({', '.join(changed)}); "
                "use another --output-dir or the recorded settings."
            )
        if run is None:
            run = {"configuration": configuration, "sessions": []}
        run["command"] = self.command
        run["model_path"] = home_relative(self.model_path)
        run["arms"] = sorted(
            set(run.get("arms", [])) | set(self.options.arms),
            key=list(ARMS).index,
        )
        run["seeds"] = max(run.get("seeds", 0), self.options.seeds)
        run["arm_definitions"] = {name: asdict(ARMS[name]) for name in run["arms"]}
        run["sessions"].append(
            {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": self.command}
        )
        run["environment"] = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "heretic_llm": version("heretic-llm"),
            "optuna": version("optuna"),
            "torch_threads": self.options.threads,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        }
        write_json_atomically(path, run)
        return run

    def finish_session(self, seconds: float) -> None:
        """Records the end of this session in the run's record."""
        path = self.state.run_path()
        run: dict[str, Any] = read_json(path)
        run["sessions"][-1].update(
            {
                "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
                "seconds": seconds,
                "work": dict(self.work),
            }
        )
        write_json_atomically(path, run)

    def study(self, arm: Arm, seed: int) -> dict[str, Any]:
        """A finished study's record, running the study first when it has not finished."""
        study = self.state.read_study(arm.name, seed)
        if study is None:
            study = run_heretic(self.options, self.model_path, arm, seed)
            write_json_atomically(self.state.study_path(arm.name, seed), study)
            with self.work_lock:
                self.work["studies"] += 1
            self.commit(
                [self.state.study_path(arm.name, seed), self.state.run_path()],
                f"In-loop study ({self.options.output_dir.name}): "
                f"{study_key(arm.name, seed)} finished",
            )
        return study

    def reusable(
        self, kind: str, arm: Arm, seed: int, trial: dict[str, Any]
    ) -> dict[str, Any] | None:
        """
        A measurement of the same abliteration in another arm's study of the same
        seed (the random startup trials coincide), so that it is not repeated.
        """
        for other in self.options.arms:
            if other == arm.name:
                continue
            other_study = self.state.read_study(other, seed)
            if other_study is None:
                continue
            record = (
                self.state.read_kl(other, seed)
                if kind == "kl"
                else self.state.read_damage(other, seed)
            )
            for other_trial in other_study["trials"]:
                measured = record["trials"].get(str(other_trial["trial"]))
                if measured is not None and same_model(trial, other_trial):
                    return {
                        **measured,
                        "copied_from": f"{other}/{other_trial['trial']}",
                    }
        return None

    def measure_kl(self, arm: Arm, seed: int, study: dict[str, Any]) -> None:
        """Re-measures both KL variants of every trial not measured yet."""
        record = self.state.read_kl(arm.name, seed)
        key = study_key(arm.name, seed)
        for trial in study["trials"]:
            name = str(trial["trial"])
            if name in record["trials"]:
                continue
            start = time.perf_counter()
            values = self.reusable("kl", arm, seed, trial)
            if values is None:
                measurer = self.get_measurer()
                measurer.apply(seed, trial)
                values = measurer.measure_kl()
                values["seconds"] = time.perf_counter() - start
            record["trials"][name] = values
            write_json_atomically(self.state.kl_path(arm.name, seed), record)
            self.work["kl_measurements"] += 1
            own = (
                values["first_token_kl"]
                if arm.kl_tokens is None
                else values["teacher_forced_kl"]
            )
            log(
                f"{key}: KL of trial {name}/{len(study['trials'])}: first-token "
                f"{values['first_token_kl']:.5f}, teacher-forced-"
                f"{measured_tokens(self.options)} "
                f"{values['teacher_forced_kl']:.5f} (heretic recorded "
                f"{trial['heretic_kl']:.5f}, re-measured {own:.5f})"
                + (
                    f", copied from {values['copied_from']}"
                    if "copied_from" in values
                    else ""
                )
                + f" ({time.perf_counter() - start:.1f} s)"
            )

    def measure_damage(self, arm: Arm, seed: int, study: dict[str, Any]) -> None:
        """Measures the damage of the study's selected trials not measured yet."""
        record = self.state.read_damage(arm.name, seed)
        selected, reasons = damage_selection(study, self.options.damage_sample)
        record["selected"] = selected
        record["reasons"] = reasons
        trials = {trial["trial"]: trial for trial in study["trials"]}
        key = study_key(arm.name, seed)
        for number in selected:
            name = str(number)
            if name in record["trials"]:
                continue
            start = time.perf_counter()
            trial = trials[number]
            values = self.reusable("damage", arm, seed, trial)
            if values is None:
                measurer = self.get_measurer()
                # The references are built from the original model, so before
                # the trial is applied (building them resets the model).
                measurer.damage_references()
                measurer.apply(seed, trial)
                values = measurer.measure_damage()
                values["seconds"] = time.perf_counter() - start
            record["trials"][name] = values
            write_json_atomically(self.state.damage_path(arm.name, seed), record)
            self.work["damage_measurements"] += 1
            log(
                f"{key}: damage of trial {name} ({reasons[name]}, refusals "
                f"{trial['refusals']}): accuracy drop {values['accuracy_drop']:.3f}, "
                f"NLL increase {values['nll_increase']:.4f}"
                + (
                    f", copied from {values['copied_from']}"
                    if "copied_from" in values
                    else ""
                )
                + f" ({time.perf_counter() - start:.1f} s)"
            )
        if not self.state.damage_path(arm.name, seed).is_file():
            write_json_atomically(self.state.damage_path(arm.name, seed), record)

    def run(self) -> None:
        """
        Runs every missing study and measurement, seed by seed so that partial
        results pair up. Up to `--workers` heretic studies run at once, each in
        its own process; this process measures each finished study in order
        while the later ones run.
        """
        pairs = [
            (seed, ARMS[name])
            for seed in range(self.options.seeds)
            for name in self.options.arms
        ]
        with ThreadPoolExecutor(max_workers=self.options.workers) as pool:
            studies = [pool.submit(self.study, arm, seed) for seed, arm in pairs]
            for (seed, arm), pending in zip(pairs, studies):
                study = pending.result()
                self.measure_kl(arm, seed, study)
                self.measure_damage(arm, seed, study)
                self.commit(
                    [self.state.folder],
                    f"In-loop study ({self.options.output_dir.name}): "
                    f"{study_key(arm.name, seed)} measured",
                )


def main(arguments: list[str] | None = None) -> int:
    """Runs the study (or only its report) from the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    options = parse_arguments(arguments)
    quoted = [shlex.quote(argument) for argument in arguments]
    command = " ".join(["python -m studies.in_loop", *quoted])
    if options.report_only:
        paths = write_report(options.output_dir, options.bootstrap)
        for path in paths:
            log(f"Wrote {path}")
        return 0
    threads = torch.get_num_threads()
    verbosity = transformers.logging.get_verbosity()
    torch.set_num_threads(options.threads)
    transformers.logging.set_verbosity_error()
    start = time.perf_counter()
    run = InLoopRun(options, command)
    try:
        run.check_configuration()
        with torch.no_grad():
            run.run()
        if run.measurer is not None:
            run.measurer.model.reset_model()
    finally:
        torch.set_num_threads(threads)
        transformers.logging.set_verbosity(verbosity)
    seconds = time.perf_counter() - start
    run.finish_session(seconds)
    paths = write_report(options.output_dir, options.bootstrap)
    log(
        f"Done in {seconds / 60:.1f} minutes (this session: {run.work['studies']} "
        f"studies, {run.work['kl_measurements']} KL and "
        f"{run.work['damage_measurements']} damage measurements); wrote:"
    )
    for path in paths:
        log(f"  {path}")
    run.commit(
        [options.output_dir],
        f"In-loop study ({options.output_dir.name}): the report from the state",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
