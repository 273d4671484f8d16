# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The metric: teacher-forced KL divergence, free of heretic.

Layers, each importing only those below it: `divergence` (the math) and
`measurement` (the result and its masked means); `reference` (the reference
continuations and their token tensors); `memory` and `forward` (the storage
policy, the out-of-memory loop and the forward pass); `engine`.
"""
