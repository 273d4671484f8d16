# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""Adapters that connect the engine to heretic: the plugin scorer and the 1.4.0 evaluator."""
