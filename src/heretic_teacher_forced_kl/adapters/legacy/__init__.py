# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Everything for heretic-llm 1.4.0, the release without scorer plugins.

The day 1.4.0 support ends, this package goes in one commit, with the two
places that import it (an import-linter contract in pyproject.toml keeps it
so): the 1.4.0 branch of `cli/launcher/run.py` (`launch_legacy_host`) and the
fallback of `adapters/plugin_api.py`.

- `stand_ins`: minimal `Scorer` and `Score` classes, so the scorer imports on 1.4.0.
- `evaluator`: 1.4.0's `Evaluator` with teacher-forced KL in place of first-token KL.
- `study`: the damage measure saved with a 1.4.0 study, which a continued study keeps.
- `menus`: the answers to 1.4.0's menus in a non-interactive run, saving
  through `adapters/saving.py`.
- `launch`: runs 1.4.0's `heretic.main` with that evaluator, storage and menus.
"""
