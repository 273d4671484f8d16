# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
What the tests need besides the development helpers: small helpers that only
tests use. There is no test double of heretic: the plugin path runs against
the real heretic master (`tests/master`, in .venv-master).

Nothing in `src/` imports this package.
"""
