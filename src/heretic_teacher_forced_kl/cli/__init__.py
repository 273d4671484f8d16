# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The `heretic-kl` command line: the heretic launcher and `heretic-kl compare`."""
