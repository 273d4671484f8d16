# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The studies behind this project's claims, run from the repository root:

    python -m studies.evidence --model smollm2 --output-dir docs/evidence

Importing the package puts the Hugging Face libraries in offline mode before
any of its modules imports them (no machine of this project reaches the Hub).
"""

from development.offline import use_offline_environment

use_offline_environment()
