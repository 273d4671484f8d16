# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Loading the two models of `heretic-kl compare`, and checking that they fit together.

The original model is wrapped in `ComparisonPromptModel`, which formats prompts
with heretic's own `Model.generate`, so that the reference continuations are
exactly those the scorer builds inside heretic. The candidate is a saved model
folder (or Hugging Face model ID), or a LoRA adapter folder as heretic and PEFT
export it, which is applied to the original model once the reference exists.
Every problem with the input becomes a `UsageError` with a one-line message.
"""

import gc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import UsageError, one_line
from ...metric.memory import empty_device_cache
from ..model_sources import ADAPTER_CONFIG_FILE, ModelSource


@dataclass
class PromptSettings:
    """
    The part of heretic's `Settings` that `heretic.model.Model.generate` reads.

    `heretic-kl compare` compares answers from their first token, so there is
    no response prefix (heretic's chain-of-thought skipping).
    """

    response_prefix: str | None = None


class ComparisonPromptModel:
    """
    A stand-in for `heretic.model.Model` around a plain Hugging Face model.

    It has what the teacher-forced engine needs (`model`, `tokenizer`,
    `generate`) and formats prompts with heretic's own `Model.generate`, called
    unbound, so that no chat formatting is re-implemented here.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = PromptSettings()

    def generate(self, prompts: list[Any], **kwargs: Any) -> tuple[Any, Any]:
        """Generates greedily through heretic's prompt path."""
        from heretic.model import Model

        return Model.generate(self, prompts, **kwargs)  # type: ignore[arg-type]


def read_json(path: Path, name: str) -> dict[str, Any]:
    """Reads a JSON object from a model folder, with a one-line error naming the argument."""
    try:
        with path.open(encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"{name}: cannot read {path} ({error}).") from None
    if not isinstance(value, dict):
        raise UsageError(f"{name}: {path} does not hold a JSON object.")
    return value


def load_config(source: ModelSource, trust_remote_code: bool) -> Any:
    """Loads a model's configuration (small; no weights)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(
            source.location, trust_remote_code=trust_remote_code
        )
    except Exception as error:
        raise UsageError(
            f"{source.name}: cannot load the model configuration of {source.argument!r} "
            f"({one_line(error)})."
        ) from None


def vocabulary_size(config: Any) -> int | None:
    """The width of a model's logits, from its (text) configuration."""
    text_config = (
        config.get_text_config() if hasattr(config, "get_text_config") else config
    )
    size = getattr(text_config, "vocab_size", None)
    return int(size) if size is not None else None


def check_vocabulary_sizes(original_config: Any, candidate_config: Any) -> None:
    """Stops when the two models' logits cannot be compared token by token."""
    original_size = vocabulary_size(original_config)
    candidate_size = vocabulary_size(candidate_config)
    if (
        original_size is not None
        and candidate_size is not None
        and original_size != candidate_size
    ):
        raise UsageError(
            f"CANDIDATE: its vocabulary has {candidate_size} tokens and ORIGINAL's has "
            f"{original_size}; both models must share one tokenizer to be compared."
        )


def load_tokenizer(source: ModelSource, trust_remote_code: bool) -> Any:
    """Loads a tokenizer as heretic does: left padding, pad token falling back to EOS."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.location, trust_remote_code=trust_remote_code
        )
    except Exception as error:
        raise UsageError(
            f"{source.name}: cannot load the tokenizer of {source.argument!r} ({one_line(error)})."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def has_tokenizer(source: ModelSource) -> bool:
    """Whether a local model folder ships a tokenizer of its own."""
    path = Path(source.location)
    return source.is_local and any(
        (path / name).is_file()
        for name in (
            "tokenizer.json",
            "tokenizer_config.json",
            "tokenizer.model",
            "vocab.json",
        )
    )


def check_tokenizers(
    original_tokenizer: Any, candidate_source: ModelSource, trust_remote_code: bool
) -> None:
    """Stops when the candidate ships a tokenizer whose tokens differ from the original's."""
    if not has_tokenizer(candidate_source):
        return
    candidate_vocabulary = load_tokenizer(
        candidate_source, trust_remote_code
    ).get_vocab()
    original_vocabulary = original_tokenizer.get_vocab()
    if candidate_vocabulary == original_vocabulary:
        return
    differing = sum(
        1
        for token in set(original_vocabulary) | set(candidate_vocabulary)
        if original_vocabulary.get(token) != candidate_vocabulary.get(token)
    )
    raise UsageError(
        f"CANDIDATE: its tokenizer differs from ORIGINAL's in {differing} tokens "
        f"({len(candidate_vocabulary)} against {len(original_vocabulary)} tokens); both models "
        "must share one tokenizer to be compared."
    )


def adapter_base_name(source: ModelSource) -> str | None:
    """The base model that an adapter folder names in its `adapter_config.json`."""
    config = read_json(Path(source.location) / ADAPTER_CONFIG_FILE, source.name)
    base = config.get("base_model_name_or_path")
    return str(base) if base else None


def short_name(name: str) -> str:
    """The last component of a model path or ID, lower-cased, for loose comparisons."""
    return Path(name.rstrip("/\\")).name.lower()


def adapter_base_matches(
    base: str, original: ModelSource, original_config: Any
) -> bool:
    """
    Whether an adapter's base model name plausibly names ORIGINAL: the same
    folder, or the same last path component as ORIGINAL or as the name saved in
    ORIGINAL's configuration (a local copy of a hub model keeps the hub name there).
    """
    if original.is_local and Path(base).expanduser().exists():
        return Path(base).expanduser().resolve() == Path(original.location).resolve()
    names = {short_name(original.argument)}
    saved_name = getattr(original_config, "_name_or_path", None) or getattr(
        original_config, "name_or_path", None
    )
    if saved_name:
        names.add(short_name(str(saved_name)))
    return short_name(base) in names


def load_model(
    source: ModelSource, device: str, dtype: str, trust_remote_code: bool
) -> Any:
    """Loads a model for inference, with the model class heretic would choose."""
    from heretic.model import get_model_class

    try:
        model_class = get_model_class(source.location)
        model = model_class.from_pretrained(
            source.location,
            dtype=dtype,
            device_map=device,
            trust_remote_code=trust_remote_code,
        )
    except Exception as error:
        raise UsageError(
            f"{source.name}: cannot load the model {source.argument!r} ({one_line(error)})."
        ) from None
    model.eval()
    return model


def output_width(model: Any) -> int | None:
    """The number of logits a loaded model produces per position."""
    embeddings = (
        model.get_output_embeddings()
        if hasattr(model, "get_output_embeddings")
        else None
    )
    weight = getattr(embeddings, "weight", None)
    return int(weight.shape[0]) if weight is not None else None


def check_output_widths(original_width: int | None, candidate: Any) -> None:
    """Stops when the loaded candidate's logits are not as wide as the original's."""
    candidate_width = output_width(candidate)
    if (
        original_width is not None
        and candidate_width is not None
        and candidate_width != original_width
    ):
        raise UsageError(
            f"CANDIDATE: it produces {candidate_width} logits per token and ORIGINAL "
            f"{original_width}; both models must share one vocabulary to be compared."
        )


def apply_adapter(base_model: Any, source: ModelSource, base_name: str | None) -> Any:
    """
    Applies a LoRA adapter folder to the loaded original model and returns the
    PEFT model. An adapter whose modules or shapes do not fit stops with a
    one-line error that names the base model it was made for.
    """
    from peft import PeftConfig, PeftModel

    made_for = f"; it was made for {base_name!r}" if base_name else ""
    try:
        config = PeftConfig.from_pretrained(source.location)
        config.inference_mode = True
        model = PeftModel(base_model, config)
        result = model.load_adapter(source.location, adapter_name="default")
    except Exception as error:
        raise UsageError(
            f"CANDIDATE: the adapter {source.argument!r} does not fit ORIGINAL "
            f"({one_line(error)}){made_for}; give its base model as ORIGINAL."
        ) from None
    unexpected = [key for key in result.unexpected_keys if "lora_" in key]
    missing = list(result.missing_keys)
    if unexpected or missing:
        example = (unexpected or missing)[0]
        kind = (
            "weights for modules ORIGINAL lacks"
            if unexpected
            else "no weights for some modules"
        )
        raise UsageError(
            f"CANDIDATE: the adapter {source.argument!r} does not fit ORIGINAL ({kind}, "
            f"e.g. {example}){made_for}; give its base model as ORIGINAL."
        )
    model.eval()
    return model


def model_device(model: Any) -> torch.device:
    """The device of a model's first parameter."""
    return next(model.parameters()).device


def release_memory(device: torch.device) -> None:
    """Returns the memory of models that are no longer referenced to the system."""
    gc.collect()
    empty_device_cache(device)
