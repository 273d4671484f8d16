# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Development helpers shared by the tests, the benchmarks and the studies.

This package lives at the repository root and is never part of the wheel
(`[tool.setuptools.packages.find]` looks only in `src/`). It is importable
when the repository root is on the import path: pytest puts it there through
its `pythonpath` setting, and `python -m studies.evidence` or
`python -m benchmarks.scoring_speed` run from the repository root do so by
themselves. Each module does one job:

- `offline`: the environment for machines without the Hugging Face Hub;
- `smollm2`: SmolLM2-135M-Instruct, converted once per machine;
- `tiny_models`: tiny random-weight chat models, built on the spot;
- `heretic_host`: heretic-llm's own `Settings` and `Model` inside a process;
- `damage`: damaging a heretic model through its LoRA adapters;
- `memory_peak`: the peak memory that one call allocates;
- `readme_example`: the README's library example, extracted for tests and CI;
- `free_running`: free-running N-token KL, as heretic pull request #209
  proposed it (the evidence study and the scoring benchmark share it).
"""
