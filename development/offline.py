# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The environment of a machine that cannot reach the Hugging Face Hub.

No machine of this project reaches the Hub, so the Hugging Face libraries are
put in offline mode: they then load local folders without trying the network
first. transformers and huggingface_hub read these variables when they are
imported, so `use_offline_environment` must run before either is imported;
the test configuration (`tests/conftest.py`) and the `studies` and
`benchmarks` packages (their `__init__.py`) call it first thing.
"""

import os


def use_offline_environment() -> None:
    """
    Puts the Hugging Face libraries in offline mode and keeps tokenizers quiet.

    Call it before transformers or huggingface_hub is imported; a later call
    has no effect on them.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # Tokenizers warns when a process forks after using its thread pool, which
    # happens whenever a test starts heretic in a subprocess.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
