# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""Damaging a heretic model through its LoRA adapters, as abliteration does."""

import torch
from heretic.model import Model


def damage(model: Model, strength: float, seed: int = 0) -> None:
    """
    Sets every LoRA adapter of `model` to a fixed random direction scaled by
    `strength` (0 restores the original model).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(model.model.named_parameters()):
            if "lora_A" in name:
                values = torch.randn(parameter.shape, generator=generator)
                parameter.copy_(values / values.norm())
            elif "lora_B" in name:
                values = torch.randn(parameter.shape, generator=generator)
                parameter.copy_(
                    strength * values / values.norm() * parameter.shape[0] ** 0.5
                )
