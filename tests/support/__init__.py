# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
What the tests need besides the development helpers: test doubles of heretic's
APIs (`doubles`), the drivers that run a test's subject in a process of its
own, and small helpers that only tests use.

Nothing in `src/` imports this package; a test double of heretic's plugin API
must never reach the package itself.
"""
