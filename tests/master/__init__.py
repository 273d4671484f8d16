# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The tests of the plugin path, run against the real heretic master (.venv-master)."""
