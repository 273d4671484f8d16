# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Exercises the scorer the way heretic master's evaluator does, against the
plugin-API test double, in a process of its own (the double must be in place
before the package is imported). Prints one JSON object of observations.

Usage, with the repository root on the import path:
python -m tests.support.plugin_contract_driver MODEL_PATH PROMPT_FILE EMPTY_PROMPT_FILE
"""

import importlib.util
import json
import sys
from pathlib import Path

from tests.support.doubles.plugin_api import install


def main() -> None:
    """Puts the plugin API in place where heretic lacks it, observes and prints."""
    model_path, prompt_file, empty_prompt_file = sys.argv[1:4]
    if importlib.util.find_spec("heretic.scorer") is None:
        install()
    # Imported only now: the observations import heretic's plugin API and the
    # package, which must find the API (real or double) in place.
    from tests.support.plugin_contract_observations import observe

    observations = observe(Path(model_path), prompt_file, empty_prompt_file)
    print("OBSERVATIONS " + json.dumps(observations))


if __name__ == "__main__":
    main()
