# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
`heretic-kl compare`: reports on real models, adapters, and every kind of bad input.

SmolLM2-135M-Instruct is compared with a copy whose weights carry noise and
with itself; tiny random models cover LoRA adapters, the progress display and
the errors. Every run goes through the `heretic-kl` entry point.
"""

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)

from development.damage import damage
from development.heretic_host import heretic_model, prompts
from development.tiny_models import build_tiny_model
from heretic_teacher_forced_kl import TeacherForcedKLEngine
from heretic_teacher_forced_kl.cli.compare.command import (
    default_prompts_path,
    default_system_prompt,
    load_comparison_prompts,
    prompt_specification,
)
from heretic_teacher_forced_kl.cli.compare.models import (
    ComparisonPromptModel,
    load_tokenizer,
)
from heretic_teacher_forced_kl.cli.compare.progress import ComparisonProgress
from heretic_teacher_forced_kl.cli.main import main as heretic_kl
from heretic_teacher_forced_kl.cli.model_sources import resolve_source

KL_TOKENS = 4

#: Few prompts keep the SmolLM2 runs short.
SMOLLM2_PROMPTS = [
    "What is the capital of France?",
    "How do I bake bread at home?",
    "Write a haiku about autumn.",
    "Explain photosynthesis briefly.",
    "Give me three tips for sleeping well.",
    "What is 12 times 7?",
]

TINY_PROMPTS = [
    "Hi",
    "What is the capital of France?",
    "Tell me a joke about computers.",
    "Write one sentence about the sea.",
    "List three colors.",
]

#: The relative strength of the noise added to the damaged SmolLM2's weights.
NOISE_SCALE = 0.08


def compare(arguments: list[Any]) -> int:
    """Runs `heretic-kl compare` on CPU, quietly, and returns its exit status."""
    return heretic_kl(
        [
            "compare",
            *[str(argument) for argument in arguments],
            "--device",
            "cpu",
            "--quiet",
        ]
    )


def read_report(path: Path) -> dict[str, Any]:
    """The `--json` document of a run."""
    return json.loads(path.read_text(encoding="utf-8"))


def single_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line of output of a run that stopped on bad input."""
    output = capsys.readouterr().out.strip()
    assert "\n" not in output, output
    assert output.startswith("heretic-kl: error: "), output
    return output


def save_noisy_copy(source: Path, directory: Path, layers: slice, scale: float) -> Path:
    """Saves a copy of a model with seeded Gaussian noise in some MLP output projections."""
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.model.layers[layers]:
            weight = layer.mlp.down_proj.weight
            weight.add_(
                torch.randn(weight.shape, generator=generator) * weight.std() * scale
            )
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(source).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def damaged_smollm2(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """SmolLM2 with noise in the MLP output projections of four middle layers."""
    return save_noisy_copy(
        smollm2_path,
        tmp_path_factory.mktemp("damaged-smollm2"),
        slice(8, 12),
        NOISE_SCALE,
    )


@pytest.fixture
def smollm2_prompt_file(write_prompt_file: Any) -> Path:
    """The SmolLM2 prompts as a text file."""
    return write_prompt_file(SMOLLM2_PROMPTS)


@pytest.fixture
def tiny_prompt_file(write_prompt_file: Any) -> Path:
    """The tiny-model prompts as a text file."""
    return write_prompt_file(TINY_PROMPTS, "tiny.txt")


def check_consistency(report: dict[str, Any]) -> None:
    """Relations that every report's numbers must satisfy."""
    assert (
        report["median_kl"] <= report["percentile_90_kl"] <= report["percentile_99_kl"]
    )
    assert report["percentile_99_kl"] <= report["maximum_kl"]
    assert report["first_token_kl"] == pytest.approx(report["positions"][0]["mean_kl"])
    assert report["perplexity_ratio"] == pytest.approx(
        math.exp(report["negative_log_likelihood_change"])
    )
    assert (
        sum(bucket["count"] for bucket in report["confidence_buckets"])
        == report["counted_tokens"]
    )
    assert sum(report["prompt_counted_tokens"]) == report["counted_tokens"]
    # The pooled mean is the count-weighted mean of the per-prompt means.
    pooled = (
        sum(
            mean * count
            for mean, count in zip(
                report["prompt_mean_kl"], report["prompt_counted_tokens"]
            )
        )
        / report["counted_tokens"]
    )
    assert report["mean_kl"] == pytest.approx(pooled, rel=1e-9)


@pytest.mark.smollm2
def test_damaged_smollm2_report(
    smollm2_path: Path,
    damaged_smollm2: Path,
    smollm2_prompt_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    json_path = tmp_path / "report.json"
    plot_path = tmp_path / "report.png"
    status = compare(
        [
            smollm2_path,
            damaged_smollm2,
            "--prompts",
            smollm2_prompt_file,
            "--kl-tokens",
            KL_TOKENS,
            "--json",
            json_path,
            "--plot",
            plot_path,
        ]
    )
    output = capsys.readouterr().out
    assert status == 0, output
    for title in (
        "Teacher-forced KL divergence",
        "KL divergence by position",
        "confidence",
    ):
        assert title in output

    document = read_report(json_path)
    report = document["report"]
    assert document["candidate_kind"] == "model"
    assert document["settings"]["system_prompt"] == default_system_prompt()
    assert report["prompt_count"] == len(SMOLLM2_PROMPTS)
    assert report["kl_tokens"] == KL_TOKENS
    assert [prompt["user"] for prompt in document["prompts"]] == SMOLLM2_PROMPTS
    assert report["mean_kl"] > 1e-3
    assert report["maximum_kl"] > report["mean_kl"]
    assert report["negative_log_likelihood_change"] != 0
    check_consistency(report)
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.smollm2
def test_smollm2_against_itself_is_identical(
    smollm2_path: Path, smollm2_prompt_file: Path, tmp_path: Path
) -> None:
    json_path = tmp_path / "report.json"
    status = compare(
        [
            smollm2_path,
            smollm2_path,
            "--prompts",
            smollm2_prompt_file,
            "--kl-tokens",
            KL_TOKENS,
            "--json",
            json_path,
        ]
    )
    assert status == 0
    report = read_report(json_path)["report"]
    assert report["mean_kl"] == pytest.approx(0.0, abs=1e-6)
    assert report["maximum_kl"] == pytest.approx(0.0, abs=1e-6)
    assert report["top1_agreement"] == 1.0
    assert report["negative_log_likelihood_change"] == pytest.approx(0.0, abs=1e-6)
    assert report["perplexity_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert report["mean_probability_change"] == pytest.approx(0.0, abs=1e-6)
    assert report["counted_tokens"] == len(SMOLLM2_PROMPTS) * KL_TOKENS


def test_json_mean_equals_engine_mean_inside_heretic(
    tiny_llama_path: Path, tiny_prompt_file: Path, tmp_path: Path
) -> None:
    damaged = save_noisy_copy(tiny_llama_path, tmp_path / "damaged", slice(0, 3), 0.3)
    json_path = tmp_path / "report.json"
    arguments = [
        "--prompts",
        tiny_prompt_file,
        "--kl-tokens",
        KL_TOKENS,
        "--batch-size",
        2,
    ]
    assert compare([tiny_llama_path, damaged, *arguments, "--json", json_path]) == 0
    report = read_report(json_path)["report"]

    # The same measurement, made by the engine on heretic's own Model (its prompt
    # formatting, its tokenizer settings, its PEFT wrapping).
    model = heretic_model(
        tiny_llama_path, batch_size=2, system_prompt=default_system_prompt()
    )
    engine = TeacherForcedKLEngine(
        kl_tokens=KL_TOKENS, batch_size=2, log=lambda _: None
    )
    engine.build_reference(model, prompts(TINY_PROMPTS))
    candidate = AutoModelForCausalLM.from_pretrained(damaged, dtype=torch.float32)
    measurement = engine.measure(candidate)
    assert report["mean_kl"] > 1e-3
    assert report["mean_kl"] == pytest.approx(measurement.mean, rel=1e-6)
    assert [position["mean_kl"] for position in report["positions"]] == pytest.approx(
        measurement.position_means, rel=1e-6
    )


def test_adapter_exported_by_heretic(
    tiny_llama_path: Path, tiny_prompt_file: Path, tmp_path: Path
) -> None:
    # heretic's own Model, abliterated through its LoRA adapters and exported as
    # heretic's "Export the abliteration LoRA only" does.
    model = heretic_model(
        tiny_llama_path, batch_size=2, system_prompt=default_system_prompt()
    )
    engine = TeacherForcedKLEngine(
        kl_tokens=KL_TOKENS, batch_size=2, log=lambda _: None
    )
    engine.build_reference(model, prompts(TINY_PROMPTS))
    damage(model, strength=0.5)
    expected = engine.measure(model.model)
    adapter_path = tmp_path / "heretic-adapter"
    model.model.save_pretrained(adapter_path)

    json_path = tmp_path / "report.json"
    arguments = [
        "--prompts",
        tiny_prompt_file,
        "--kl-tokens",
        KL_TOKENS,
        "--json",
        json_path,
    ]
    assert compare([tiny_llama_path, adapter_path, *arguments]) == 0
    document = read_report(json_path)
    assert document["candidate_kind"] == "adapter"
    assert document["report"]["mean_kl"] > 1e-3
    assert document["report"]["mean_kl"] == pytest.approx(expected.mean, rel=1e-5)


def save_lora_adapter(base_path: Path, directory: Path, seed: int = 0) -> Any:
    """Saves a rank-2 LoRA adapter with random weights for `base_path`; returns the PEFT model."""
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    config = LoraConfig(
        r=2,
        lora_alpha=2,
        target_modules=["o_proj", "down_proj"],
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    peft_model.save_pretrained(directory)
    return peft_model


def test_lora_adapter_equals_its_merged_model(
    tiny_llama_path: Path,
    tiny_prompt_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    adapter_path = tmp_path / "adapter"
    merged_path = tmp_path / "merged"
    peft_model = save_lora_adapter(tiny_llama_path, adapter_path)
    peft_model.merge_and_unload().save_pretrained(merged_path)
    AutoTokenizer.from_pretrained(tiny_llama_path).save_pretrained(merged_path)

    arguments = ["--prompts", tiny_prompt_file, "--kl-tokens", KL_TOKENS, "--json"]
    assert (
        compare([tiny_llama_path, adapter_path, *arguments, tmp_path / "adapter.json"])
        == 0
    )
    output = capsys.readouterr().out
    assert "LoRA adapter" in output
    assert "base model" not in output  # No warning: the adapter names this base.
    assert (
        compare([tiny_llama_path, merged_path, *arguments, tmp_path / "merged.json"])
        == 0
    )

    adapter_document = read_report(tmp_path / "adapter.json")
    merged_report = read_report(tmp_path / "merged.json")["report"]
    adapter_report = adapter_document["report"]
    assert adapter_document["candidate_kind"] == "adapter"
    assert adapter_report["mean_kl"] > 1e-3
    assert adapter_report["mean_kl"] == pytest.approx(
        merged_report["mean_kl"], rel=1e-4
    )
    check_consistency(adapter_report)


def test_progress_counts_each_prompt_once_per_step(tiny_llama_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path, dtype=torch.float32)
    prompt_model = ComparisonPromptModel(
        model, load_tokenizer(resolve_source(str(tiny_llama_path), "ORIGINAL"), False)
    )
    engine = TeacherForcedKLEngine(
        kl_tokens=KL_TOKENS, batch_size=2, log=lambda _: None
    )
    with ComparisonProgress(len(TINY_PROMPTS), enabled=False) as progress:
        with (
            progress.generation(prompt_model, "generate"),
            progress.forward_passes(model, "original"),
        ):
            engine.build_reference(prompt_model, prompts(TINY_PROMPTS))
        with progress.forward_passes(model, "candidate"):
            engine.measure(model)
        # The hooks are gone afterwards: another pass counts nothing.
        engine.measure(model)
        completed = [task.completed for task in progress.progress.tasks]
    assert completed == [len(TINY_PROMPTS)] * 3
    assert "generate" not in vars(prompt_model)


def test_prompt_specifications(tiny_prompt_file: Path) -> None:
    default = load_comparison_prompts(prompt_specification(None), "System.")
    assert Path(default_prompts_path()).is_file()
    assert len(default) == 100 and default[0].system == "System."

    specification = prompt_specification(
        json.dumps(
            {
                "dataset": str(tiny_prompt_file),
                "split": "[:2]",
                "system_prompt": "Be brief.",
            }
        )
    )
    loaded = load_comparison_prompts(specification, "System.")
    assert [prompt.user for prompt in loaded] == TINY_PROMPTS[:2]
    assert {prompt.system for prompt in loaded} == {"Be brief."}
    assert prompt_specification("some/dataset").split == "test[:100]"


def test_help_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert heretic_kl(["compare", "--help"]) == 0
    assert "--kl-tokens" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            ["--kl-tokens", "0"],
            "--kl-tokens: Input should be greater than or equal to 1",
        ),
        (
            ["--kl-tokens", "-3"],
            "--kl-tokens: Input should be greater than or equal to 1",
        ),
        (["--kl-tokens", "many"], "--kl-tokens: invalid int value"),
        (["--batch-size", "0"], "--batch-size: must be at least 1"),
        (["--json", "/no/such/folder/report.json"], "--json: the folder"),
        (["--dtype", "int8"], "--dtype: invalid choice"),
    ],
)
def test_bad_options_stop_before_loading(
    arguments: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The models do not exist: the options are checked before the models are looked at.
    assert compare(["/no/such/original", "/no/such/candidate", *arguments]) == 2
    assert expected in single_error_line(capsys)


def test_missing_matplotlib_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert (
        compare(
            ["/no/such/original", "/no/such/candidate", "--plot", tmp_path / "plot.png"]
        )
        == 2
    )
    assert "pip install 'heretic-teacher-forced-kl[plot]'" in single_error_line(capsys)


def test_missing_and_invalid_folders(
    tiny_llama_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compare(["/no/such/original", tiny_llama_path]) == 2
    assert "ORIGINAL: no model folder at '/no/such/original'" in single_error_line(
        capsys
    )

    assert compare([tiny_llama_path, tmp_path / "missing"]) == 2
    assert "CANDIDATE: no model folder" in single_error_line(capsys)

    (tmp_path / "empty").mkdir()
    assert compare([tiny_llama_path, tmp_path / "empty"]) == 2
    assert "CANDIDATE:" in single_error_line(capsys)

    adapter_path = tmp_path / "adapter"
    save_lora_adapter(tiny_llama_path, adapter_path)
    assert compare([adapter_path, tiny_llama_path]) == 2
    assert "ORIGINAL:" in single_error_line(capsys)


def test_bad_prompts(
    tiny_llama_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        compare(
            [tiny_llama_path, tiny_llama_path, "--prompts", tmp_path / "missing.txt"]
        )
        == 2
    )
    assert "--prompts: no file" in single_error_line(capsys)

    assert compare([tiny_llama_path, tiny_llama_path, "--prompts", "{not json"]) == 2
    assert "--prompts: invalid JSON" in single_error_line(capsys)

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    assert compare([tiny_llama_path, tiny_llama_path, "--prompts", empty]) == 2
    assert "holds only blank lines" in single_error_line(capsys)

    two = tmp_path / "two.txt"
    two.write_text("first\nsecond\n", encoding="utf-8")
    beyond = json.dumps({"dataset": str(two), "split": "[5:]"})
    assert compare([tiny_llama_path, tiny_llama_path, "--prompts", beyond]) == 2
    assert "holds 2 prompts, and the split '[5:]' selects none" in single_error_line(
        capsys
    )


def test_different_vocabularies(
    tiny_llama_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wider = shutil.copytree(tiny_llama_path, tmp_path / "wider")
    config = json.loads((wider / "config.json").read_text())
    config["vocab_size"] += 64
    (wider / "config.json").write_text(json.dumps(config))
    assert compare([tiny_llama_path, wider]) == 2
    assert "vocabulary has 704 tokens and ORIGINAL's has 640" in single_error_line(
        capsys
    )

    # Same size, but two tokens have swapped identifiers.
    swapped = shutil.copytree(tiny_llama_path, tmp_path / "swapped")
    tokenizer = json.loads((swapped / "tokenizer.json").read_text())
    vocabulary = tokenizer["model"]["vocab"]
    vocabulary["a"], vocabulary["b"] = vocabulary["b"], vocabulary["a"]
    (swapped / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert compare([tiny_llama_path, swapped]) == 2
    assert "tokenizer differs from ORIGINAL's in 2 tokens" in single_error_line(capsys)


def test_adapter_for_another_base_model(
    tiny_llama_path: Path,
    tiny_prompt_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A base model with another hidden size: the adapter's shapes do not fit.
    narrow_base = tmp_path / "narrow-base"
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=640,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    ).save_pretrained(narrow_base)
    narrow_adapter = tmp_path / "narrow-adapter"
    save_lora_adapter(narrow_base, narrow_adapter)
    arguments = ["--prompts", tiny_prompt_file, "--kl-tokens", "2"]
    assert compare([tiny_llama_path, narrow_adapter, *arguments]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert (
        "names" in lines[0] and "narrow-base" in lines[0]
    )  # The warning about the name.
    assert lines[-1].startswith("heretic-kl: error: CANDIDATE: the adapter")
    assert "does not fit ORIGINAL" in lines[-1] and "narrow-base" in lines[-1]

    # A base model with one more layer: the adapter has weights for a missing layer.
    deeper_base = build_tiny_model(
        tmp_path / "deeper-base", "llama", num_hidden_layers=4
    )
    deeper_adapter = tmp_path / "deeper-adapter"
    save_lora_adapter(deeper_base, deeper_adapter)
    assert compare([tiny_llama_path, deeper_adapter, *arguments]) == 2
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "weights for modules ORIGINAL lacks" in last_line and "layers.3" in last_line
