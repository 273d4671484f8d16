# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
heretic's scorer plugin API, where the installed heretic has it.

heretic master has `heretic.scorer.Scorer` and `heretic.scorer.Score`; the
scorer then subclasses the real classes, so heretic loads it like any plugin.
heretic-llm 1.4.0 has none: the stand-ins of `legacy.stand_ins` take their place.
"""

try:
    from heretic.scorer import Score, Scorer

    HAS_PLUGIN_API = True
except ImportError:
    from .legacy.stand_ins import Score, Scorer  # type: ignore[assignment]

    HAS_PLUGIN_API = False


__all__ = ["HAS_PLUGIN_API", "Score", "Scorer"]
