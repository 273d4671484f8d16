# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
heretic's scorer plugin API, where the installed heretic has it.

heretic master has `heretic.scorer.Scorer` and `heretic.scorer.Score`; the
scorer then subclasses the real classes, so heretic loads it like any plugin.
heretic-llm 1.4.0 has no `heretic.scorer` module: the stand-ins of
`legacy.stand_ins` take its place. The host is decided by whether the module
exists, not by whether importing it succeeds: where it exists but fails to
import (a broken dependency, such as a torchvision built for another torch),
the import error surfaces as one line naming it.
"""

import importlib.util

from ..errors import RunError


def root_cause(error: BaseException) -> str:
    """The innermost cause of an exception, as "Type: first line of its message"."""
    while (cause := error.__cause__ or error.__context__) is not None:
        error = cause
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


HAS_PLUGIN_API = importlib.util.find_spec("heretic.scorer") is not None

if HAS_PLUGIN_API:
    try:
        from heretic.scorer import Score, Scorer
    except Exception as error:
        raise RunError(
            "heretic has the plugin API (heretic.scorer), but importing it failed: "
            f"{root_cause(error)} (repair or reinstall heretic's dependencies)."
        ) from error
else:
    from .legacy.stand_ins import Score, Scorer  # type: ignore[assignment]


__all__ = ["HAS_PLUGIN_API", "Score", "Scorer"]
