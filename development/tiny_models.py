# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors
"""Tiny random-weight chat models, built on the spot for fast tests.

No hub is reachable from the machines of this project, so tests that need a
Hugging Face model folder build one here: a byte-level BPE tokenizer trained
on a few dozen English sentences with a ChatML chat template, and a Llama or
Qwen2 model of hidden size 64 with random weights. A build takes well under
five seconds and under one megabyte of disk. The folders load with
`AutoTokenizer` and `AutoModelForCausalLM` and with heretic 1.4.0, which
needs at least three decoder layers.

The weights are drawn with a large initializer range (0.3) so that greedy
continuations of different prompts differ; with the default of 0.02 every
prompt generates the same tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import (
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

END_OF_TEXT_TOKEN = "<|endoftext|>"
MESSAGE_START_TOKEN = "<|im_start|>"
MESSAGE_END_TOKEN = "<|im_end|>"

# The order fixes the identifiers: 0, 1 and 2, as in SmolLM2.
SPECIAL_TOKENS = [END_OF_TEXT_TOKEN, MESSAGE_START_TOKEN, MESSAGE_END_TOKEN]

# The trained vocabulary size, including the 256 byte symbols and the
# special tokens.
VOCABULARY_SIZE = 640

# A ChatML template that renders every message, the system message included,
# and opens an assistant turn when asked for a generation prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Varied English sentences for training the tokenizer. They include the chat
# roles and phrases that test prompts commonly contain.
TRAINING_SENTENCES = [
    "You are a helpful assistant.",
    "system user assistant",
    "What is the capital of France? The capital of France is Paris.",
    "How do I bake a loaf of bread at home?",
    "Write a short poem about the sea and the wind.",
    "Explain how photosynthesis works in green plants.",
    "Give me three tips for learning a new language.",
    "The quick brown fox jumps over the lazy dog.",
    "Please summarize the following paragraph in one sentence.",
    "Translate this sentence into German: good morning, my friend.",
    "Why is the sky blue during the day and red at sunset?",
    "List the planets of the solar system in order from the sun.",
    "I cannot help with that request, but I can offer something else.",
    "Sure! Here is a simple recipe for tomato soup.",
    "Describe the history of the printing press in a few lines.",
    "What are the health benefits of walking every day?",
    "How many legs does a spider have? A spider has eight legs.",
    "Tell me a joke about computers and programmers.",
    "Can you recommend a good book about ancient Rome?",
    "The meeting was moved to Thursday afternoon at three o'clock.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "She opened the window and listened to the birds singing.",
    "Numbers like 1, 2, 3, 42 and 2026 appear in many questions.",
    "How should I prepare for a job interview next week?",
    "Write a function in Python that reverses a list.",
    "What is the difference between weather and climate?",
    "Our team finished the project ahead of schedule.",
    "Mountains, rivers, forests and deserts cover the continents.",
    "I'm sorry, but I won't provide instructions for that.",
    "Let me think step by step about this problem.",
    "Music, painting and dance are forms of artistic expression.",
    "The library opens at nine and closes at five on weekdays.",
    "Which animals live in the Arctic, and how do they stay warm?",
    "Compose an email to thank a colleague for their help.",
    "Electric cars use batteries instead of petrol engines.",
    "My favourite fruits are apples, oranges, bananas and grapes.",
    "What happened during the French Revolution?",
    "Please explain recursion to a ten-year-old child.",
    "Rain is expected tomorrow, so bring an umbrella.",
    "How do vaccines train the immune system?",
]


def build_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    """Train a small byte-level BPE chat tokenizer and save it in `directory`.

    The tokenizer has the special tokens `<|endoftext|>` (padding),
    `<|im_start|>` and `<|im_end|>` (end of sequence) and a ChatML chat
    template. It adds no special tokens of its own when encoding, so a
    rendered chat is tokenized exactly as written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = BpeTrainer(
        vocab_size=VOCABULARY_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(TRAINING_SENTENCES, trainer=trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=MESSAGE_END_TOKEN,
        pad_token=END_OF_TEXT_TOKEN,
        unk_token=None,
        bos_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(directory))
    return tokenizer


def build_tiny_model(
    directory: Path,
    architecture: Literal["llama", "qwen2", "gpt2"],
    seed: int = 0,
    num_hidden_layers: int = 3,
    max_position_embeddings: int = 2048,
) -> Path:
    """Build a tiny random-weight chat model in `directory` and return it.

    The folder holds the tokenizer from `build_tokenizer`, a float32
    `LlamaForCausalLM` or `Qwen2ForCausalLM` (hidden size 64, intermediate
    size 128, 4 attention heads, 2 key-value heads, untied embeddings), or a
    `GPT2LMHeadModel` (learned absolute positions, `max_position_embeddings` of
    them), and a generation configuration whose end-of-sequence token is
    `<|im_end|>`.
    The same `seed` always gives the same weights.
    """
    directory = Path(directory)
    tokenizer = build_tokenizer(directory)
    end_of_sequence_id = tokenizer.convert_tokens_to_ids(MESSAGE_END_TOKEN)
    padding_id = tokenizer.convert_tokens_to_ids(END_OF_TEXT_TOKEN)

    shared_settings: dict[str, object] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": max_position_embeddings,
        "initializer_range": 0.3,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": end_of_sequence_id,
        "pad_token_id": padding_id,
    }

    # Seeding here makes the random initialization reproducible.
    torch.manual_seed(seed)
    model: PreTrainedModel
    if architecture == "llama":
        model = LlamaForCausalLM(LlamaConfig(**shared_settings))
    elif architecture == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**shared_settings))
    elif architecture == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(tokenizer),
                n_embd=64,
                n_layer=num_hidden_layers,
                n_head=4,
                n_positions=max_position_embeddings,
                initializer_range=0.3,
                bos_token_id=end_of_sequence_id,
                eos_token_id=end_of_sequence_id,
                pad_token_id=padding_id,
            )
        )
    else:
        raise ValueError(f"Unknown tiny model architecture: {architecture!r}")
    model.to(torch.float32)
    model.eval()

    generation_config = GenerationConfig(
        eos_token_id=end_of_sequence_id,
        pad_token_id=padding_id,
    )
    model.generation_config = generation_config
    model.save_pretrained(str(directory))
    generation_config.save_pretrained(str(directory))
    return directory


def build_tiny_multimodal_model(directory: Path, seed: int = 0) -> Path:
    """Build and save a tiny random Gemma 3 image-text-to-text model.

    Its config has a `vision_config`, so heretic loads it with
    `AutoModelForImageTextToText` and finds its decoder layers under
    `model.language_model`, as for real multimodal models.
    """
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    from transformers.models.gemma3.configuration_gemma3 import Gemma3TextConfig
    from transformers.models.siglip.configuration_siglip import SiglipVisionConfig

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    vocabulary_size = len(tokenizer)
    text_config = Gemma3TextConfig(
        vocab_size=vocabulary_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        sliding_window=64,
        initializer_range=0.3,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision_config = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = Gemma3Config(
        text_config=text_config,
        vision_config=vision_config,
        mm_tokens_per_image=4,
        image_token_index=vocabulary_size - 1,
        boi_token_index=vocabulary_size - 2,
        eoi_token_index=vocabulary_size - 3,
        initializer_range=0.3,
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
