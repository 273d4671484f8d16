# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""Test doubles of heretic APIs that the installed heretic release lacks."""
