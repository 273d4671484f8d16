# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Per-trial scoring time and peak memory of four ways to measure KL divergence.

Usage:

    python -m benchmarks.scoring_speed [--model PATH|smollm2|tiny] [--prompts 64]
        [--rounds 5] [--device cpu|cuda] [--batch-size 16] [--json OUT]

In one process, on one heretic-llm `Model` whose LoRA adapters carry a small
random perturbation (an "abliterated" model, not the original), it times:

- (a) heretic's first-token KL, exactly as heretic-llm 1.4.0 computes it:
  `Model.get_logprobs_batched` (chat template, tokenization, `generate` of one
  token with `output_logits=True`, log-softmax, offload to the CPU) and
  `F.kl_div(..., reduction="batchmean", log_target=True)` against the
  original's log-probabilities stored at init;
- (b) free-running N-token KL, as proposed in heretic pull request #209 and
  shipped by heretic forks: the current model generates N tokens itself with
  `output_logits=True`, and KL is taken position by position against the
  original's distributions at the same positions, stored at init from the
  original's own free generation (`development/free_running.py`, which the
  evidence study uses too). It is given the key-value cache (the fastest way
  to generate), so it is compared at its best;
- (c) this package: `TeacherForcedKLEngine.measure` (one teacher-forced forward
  pass per batch over prompt + N - 1 reference tokens, KL at N positions);
- (d) the floor: one bare forward pass per batch over the same prompt + N - 1
  tokens with logits at N positions (`logits_to_keep=N`), without any KL;
- (d*) the same bare forward pass, with the N positions given as a tensor of
  indices, as the engine gives them: the CPU output layer multiplies the
  strided view that `logits_to_keep=N` selects several times more slowly
  than the contiguous copy that a tensor of indices selects, so (d*) is the
  floor of exactly the forward pass that (c) runs.

Every round runs every variant once, in an order rotated from round to round,
so drift of the machine (other processes, heat) affects all variants alike;
the reported time is the median over rounds. Peak memory is measured in a
separate, untimed pass (see `development/memory_peak.py` for how).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from heretic.config import Settings
from heretic.model import Model
from heretic.utils import Prompt

from development.damage import damage
from development.free_running import free_running_kl, free_running_log_probabilities
from development.heretic_host import neutral_command_line
from development.memory_peak import peak_bytes, synchronize
from heretic_teacher_forced_kl import TeacherForcedKLEngine

#: The N of the free-running variant (b).
FREE_RUNNING_TOKENS = (3, 8, 16)
#: The N of this package's variant (c) and of the floor (d).
TEACHER_FORCED_TOKENS = (1, 3, 8, 16)
#: Targets, as ratios of median times.
TARGET_RATIO = 1.10
#: The N at which (c) is compared with heretic's first-token KL.
FIRST_TOKEN_COMPARISON_TOKENS = 3
#: The N at which (c) must beat free-running KL.
FREE_RUNNING_COMPARISON_TOKENS = 16
#: Bytes per float32 value.
FLOAT32_BYTES = 4


@dataclass
class Variant:
    """One way to score a trial, with its measurements."""

    key: str
    label: str
    kl_tokens: int
    run: Callable[[], float | None] = field(repr=False)
    scored_logit_bytes_per_batch: int = 0
    seconds: list[float] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)
    peak_bytes: int = 0
    value: float | None = None

    @property
    def median(self) -> float:
        """The median time of one trial's scoring on the chosen clock, in seconds."""
        return statistics.median(self.seconds)

    @property
    def wall_median(self) -> float:
        """The median wall-clock time of one trial's scoring, in seconds."""
        return statistics.median(self.wall_seconds)


def parse_arguments(arguments: list[str] | None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scoring_speed",
        description="Time heretic's first-token KL, free-running N-token KL, "
        "teacher-forced N-token KL and a bare forward pass, side by side.",
    )
    parser.add_argument(
        "--model",
        default="smollm2",
        help="A model folder, 'smollm2' (SmolLM2-135M-Instruct, prepared by "
        "development/smollm2.py) or 'tiny' (a tiny random Llama). "
        "Default: smollm2.",
    )
    parser.add_argument(
        "--prompts", type=int, default=64, help="Number of prompts (default 64)."
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="Timed rounds (default 5)."
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="Default: cpu."
    )
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        default="auto",
        help="Model dtype (default: float32 on cpu, bfloat16 on cuda).",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="Prompts per forward pass (default 16).",
    )
    parser.add_argument(
        "--perturbation",
        type=float,
        default=0.05,
        help="Strength of the random LoRA perturbation (default 0.05).",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch (default 0: torch's own choice). On a machine "
        "shared with other work, 1 gives far steadier times.",
    )
    parser.add_argument(
        "--clock",
        choices=["auto", "wall", "cpu"],
        default="auto",
        help="What a trial's time is: 'wall' (wall-clock, after synchronizing the "
        "device) or 'cpu' (CPU seconds of this process, which other processes on a "
        "shared machine barely disturb). Default auto: cpu on the CPU, wall on CUDA.",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="Also write the results here."
    )
    parsed = parser.parse_args(arguments)
    if parsed.prompts < 1:
        parser.error("--prompts must be at least 1.")
    if parsed.rounds < 1:
        parser.error("--rounds must be at least 1.")
    if parsed.batch_size < 1:
        parser.error("--batch-size must be at least 1.")
    if parsed.threads < 0:
        parser.error("--threads must be 0 (torch's choice) or more.")
    if parsed.clock == "cpu" and parsed.device == "cuda":
        parser.error(
            "--clock cpu does not count the GPU's work; "
            "use --clock wall with --device cuda."
        )
    if parsed.device == "cuda" and not torch.cuda.is_available():
        parser.error(
            "--device cuda needs a CUDA device; none is available, use --device cpu."
        )
    return parsed


def resolve_model(choice: str, scratch: Path) -> tuple[Path, str]:
    """Returns the model folder for `--model` and a short name for the report."""
    if choice == "smollm2":
        from development.smollm2 import prepare_smollm2

        return prepare_smollm2(), "SmolLM2-135M-Instruct"
    if choice == "tiny":
        from development.tiny_models import build_tiny_model

        return build_tiny_model(scratch / "tiny-llama", "llama"), "tiny random Llama"
    path = Path(choice).expanduser()
    if not path.is_dir():
        raise SystemExit(
            f"--model {choice!r} is not a folder; pass a model folder, smollm2 or tiny."
        )
    return path, path.name


def load_model(path: Path, device: str, dtype: str, batch_size: int) -> Model:
    """Loads heretic's `Model` (PEFT-wrapped, LoRA adapters at zero)."""
    with neutral_command_line():
        settings = Settings(
            model=str(path),
            device_map=device,
            dtypes=[dtype],
            batch_size=batch_size,
        )
        return Model(settings)


def bundled_prompts(count: int, system_prompt: str) -> list[Prompt]:
    """The first `count` prompts of the bundled harmless evaluation set."""
    text = (
        resources.files("heretic_teacher_forced_kl")
        .joinpath("data/prompts/harmless_evaluation.txt")
        .read_text(encoding="utf-8")
    )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if count > len(lines):
        raise SystemExit(
            f"--prompts {count} exceeds the {len(lines)} bundled prompts; pass fewer."
        )
    return [Prompt(system=system_prompt, user=line) for line in lines[:count]]


@contextmanager
def heretic_cache_release_without_collection() -> Iterator[None]:
    """
    Runs the block with heretic's `empty_cache` reduced to releasing the device
    cache: heretic calls it after every batch of `get_logprobs`, and its two
    `gc.collect()` calls cost time in proportion to the Python objects alive in
    the process, which has nothing to do with measuring KL.
    """
    import heretic.model

    original = heretic.model.empty_cache

    def release_device_cache() -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    heretic.model.empty_cache = release_device_cache
    try:
        yield
    finally:
        heretic.model.empty_cache = original


def build_variants(
    model: Model, prompts: list[Prompt], batch_size: int, vocabulary: int
) -> list[Variant]:
    """Builds every variant's state from the original, unperturbed model."""
    logit_bytes = FLOAT32_BYTES * vocabulary
    variants: list[Variant] = []

    baseline = model.get_logprobs_batched(prompts)

    def first_token() -> float:
        log_probs = model.get_logprobs_batched(prompts)
        return F.kl_div(
            log_probs, baseline, reduction="batchmean", log_target=True
        ).item()

    def first_token_without_collection() -> float:
        with heretic_cache_release_without_collection():
            return first_token()

    variants.append(
        Variant(
            "a", "(a) heretic first-token KL", 1, first_token, batch_size * logit_bytes
        )
    )
    variants.append(
        Variant(
            "a*",
            "(a*) same, without heretic's gc.collect()",
            1,
            first_token_without_collection,
            batch_size * logit_bytes,
        )
    )

    for kl_tokens in FREE_RUNNING_TOKENS:
        reference = free_running_log_probabilities(model, prompts, kl_tokens)

        def free_running(
            kl_tokens: int = kl_tokens, reference: list = reference
        ) -> float:
            current = free_running_log_probabilities(model, prompts, kl_tokens)
            return free_running_kl(current, reference, kl_tokens)

        variants.append(
            Variant(
                "b",
                f"(b) free-running KL, N={kl_tokens}",
                kl_tokens,
                free_running,
                batch_size * kl_tokens * logit_bytes,
            )
        )

    for kl_tokens in TEACHER_FORCED_TOKENS:
        engine = TeacherForcedKLEngine(
            kl_tokens=kl_tokens, batch_size=batch_size, log=lambda _message: None
        )
        engine.build_reference(model, prompts)

        def teacher_forced(engine: TeacherForcedKLEngine = engine) -> float:
            return engine.score(model.model)

        def bare_forward(
            engine: TeacherForcedKLEngine = engine, as_positions: bool = False
        ) -> None:
            with torch.inference_mode():
                for batch in engine.batches:
                    length = batch.input_ids.shape[1]
                    model.model(
                        input_ids=batch.input_ids,
                        attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids,
                        use_cache=False,
                        logits_to_keep=(
                            torch.arange(
                                length - engine.kl_tokens,
                                length,
                                device=batch.input_ids.device,
                            )
                            if as_positions
                            else engine.kl_tokens
                        ),
                    )
            return None

        def bare_forward_at_positions(
            engine: TeacherForcedKLEngine = engine,
        ) -> None:
            return bare_forward(engine, as_positions=True)

        scored_bytes = batch_size * kl_tokens * logit_bytes
        variants.append(
            Variant(
                "c",
                f"(c) teacher-forced KL, N={kl_tokens}",
                kl_tokens,
                teacher_forced,
                scored_bytes,
            )
        )
        variants.append(
            Variant(
                "d",
                f"(d) bare forward, N={kl_tokens}",
                kl_tokens,
                bare_forward,
                scored_bytes,
            )
        )
        variants.append(
            Variant(
                "d*",
                f"(d*) bare forward, positions tensor, N={kl_tokens}",
                kl_tokens,
                bare_forward_at_positions,
                scored_bytes,
            )
        )
    return variants


def timed(variant: Variant, device: torch.device) -> tuple[float, float]:
    """
    Runs `variant` once and returns the wall-clock seconds (device work
    included) and the CPU seconds that this process's threads spent.
    """
    synchronize(device)
    wall_start = time.perf_counter()
    processor_start = time.process_time()
    variant.value = variant.run()
    synchronize(device)
    return time.perf_counter() - wall_start, time.process_time() - processor_start


def find(variants: list[Variant], key: str, kl_tokens: int) -> Variant:
    """The variant of family `key` at `kl_tokens` tokens."""
    for variant in variants:
        if variant.key == key and variant.kl_tokens == kl_tokens:
            return variant
    raise KeyError(f"No variant ({key}) at N={kl_tokens}.")


def target_checks(variants: list[Variant]) -> list[dict[str, Any]]:
    """Evaluates every target as a ratio of median times."""
    checks = []
    compared = find(variants, "c", FIRST_TOKEN_COMPARISON_TOKENS)
    for key in ("a", "a*"):
        ratio = compared.median / find(variants, key, 1).median
        checks.append(
            {
                "target": f"(c) N={FIRST_TOKEN_COMPARISON_TOKENS} "
                f"<= {TARGET_RATIO:.2f} x ({key})",
                "ratio": ratio,
                "met": ratio <= TARGET_RATIO,
            }
        )
    for floor in ("d", "d*"):
        for kl_tokens in TEACHER_FORCED_TOKENS:
            ratio = (
                find(variants, "c", kl_tokens).median
                / find(variants, floor, kl_tokens).median
            )
            checks.append(
                {
                    "target": f"(c) N={kl_tokens} "
                    f"<= {TARGET_RATIO:.2f} x ({floor}) N={kl_tokens}",
                    "ratio": ratio,
                    "met": ratio <= TARGET_RATIO,
                }
            )
    ratio = (
        find(variants, "c", FREE_RUNNING_COMPARISON_TOKENS).median
        / find(variants, "b", FREE_RUNNING_COMPARISON_TOKENS).median
    )
    checks.append(
        {
            "target": f"(c) N={FREE_RUNNING_COMPARISON_TOKENS} faster than "
            f"(b) N={FREE_RUNNING_COMPARISON_TOKENS}",
            "ratio": ratio,
            "met": ratio < 1.0,
        }
    )
    return checks


def mebibytes(size: int) -> str:
    """`size` bytes in MiB, with one decimal."""
    return f"{size / 2**20:.1f}"


def results_table(variants: list[Variant]) -> str:
    """The results as a Markdown table."""
    first_token = find(variants, "a", 1)
    lines = [
        "| variant | median s/trial | min-max s | wall-clock median s | x (a) "
        "| x (d) same N | x (d*) same N | peak extra MiB | scored logits MiB/batch "
        "| KL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in variants:
        versus_floors = []
        for floor_key in ("d", "d*"):
            if variant.key in ("c", "d", "d*"):
                floor = find(variants, floor_key, variant.kl_tokens)
                versus_floors.append(f"{variant.median / floor.median:.3f}")
            else:
                versus_floors.append("-")
        value = "-" if variant.value is None else f"{variant.value:.4f}"
        lines.append(
            f"| {variant.label} | {variant.median:.3f} | "
            f"{min(variant.seconds):.3f}-{max(variant.seconds):.3f} | "
            f"{variant.wall_median:.3f} | "
            f"{variant.median / first_token.median:.3f} | "
            f"{versus_floors[0]} | {versus_floors[1]} | "
            f"{mebibytes(variant.peak_bytes)} | "
            f"{mebibytes(variant.scored_logit_bytes_per_batch)} | {value} |"
        )
    return "\n".join(lines)


def main(arguments: list[str] | None = None) -> int:
    """Runs the benchmark and prints the results; returns the exit status."""
    parsed = parse_arguments(arguments)
    if parsed.threads:
        torch.set_num_threads(parsed.threads)
    device = torch.device(parsed.device)
    clock = parsed.clock
    if clock == "auto":
        clock = "cpu" if device.type == "cpu" else "wall"
    dtype = parsed.dtype
    if dtype == "auto":
        dtype = "float32" if device.type == "cpu" else "bfloat16"

    # The folder of a tiny model must outlive the model, which may map its files.
    scratch = tempfile.TemporaryDirectory()
    path, model_name = resolve_model(parsed.model, Path(scratch.name))
    model = load_model(path, parsed.device, dtype, parsed.batch_size)
    prompts = bundled_prompts(parsed.prompts, model.settings.system_prompt)
    vocabulary = int(model.model.get_output_embeddings().weight.shape[0])

    print(f"Building references with the original {model_name} ...", flush=True)
    variants = build_variants(model, prompts, parsed.batch_size, vocabulary)
    damage(model, parsed.perturbation)

    print("Warming up ...", flush=True)
    for variant in variants:
        timed(variant, device)

    for round_index in range(parsed.rounds):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            wall_seconds, processor_seconds = timed(variant, device)
            variant.wall_seconds.append(wall_seconds)
            variant.seconds.append(
                processor_seconds if clock == "cpu" else wall_seconds
            )
        print(f"Round {round_index + 1}/{parsed.rounds} done", flush=True)

    print("Measuring peak memory ...", flush=True)
    for variant in variants:
        _, variant.peak_bytes = peak_bytes(variant.run, device)

    threads = torch.get_num_threads() if device.type == "cpu" else None
    description = (
        f"{model_name}, {dtype}, {parsed.device}"
        + (f" ({threads} threads)" if threads is not None else "")
        + f", {parsed.prompts} prompts, batch size {parsed.batch_size}, "
        f"median of {parsed.rounds} rounds, "
        + ("CPU seconds of the process" if clock == "cpu" else "wall-clock seconds")
        + f", torch {torch.__version__}"
    )
    table = results_table(variants)
    checks = target_checks(variants)
    print()
    print(description)
    print()
    print(table)
    print()
    for check in checks:
        verdict = "met" if check["met"] else "MISSED"
        print(f"- {check['target']}: ratio {check['ratio']:.3f} -> {verdict}")

    if parsed.json is not None:
        parsed.json.parent.mkdir(parents=True, exist_ok=True)
        parsed.json.write_text(
            json.dumps(
                {
                    "description": description,
                    "clock": clock,
                    "command": " ".join(sys.argv),
                    "variants": [
                        {
                            key: value
                            for key, value in asdict(variant).items()
                            if key != "run"
                        }
                        | {"median": variant.median, "wall_median": variant.wall_median}
                        for variant in variants
                    ],
                    "targets": checks,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
