# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The KL prompt file, checked before any model loads.

A missing, empty, blank or undecodable local prompt file would otherwise stop
the study only after the model has loaded (minutes on a real model). The
launcher checks the file that teacher-forced KL will read: the one of
`--kl-prompts` or of `[scorer.TeacherForcedKL] prompts`, or on heretic-llm
1.4.0, unless those are set, 1.4.0's `good_evaluation_prompts`.
"""

from typing import Any

from ...errors import UsageError
from ...names import SETTINGS_TABLE
from ...prompts import check_prompt_file
from ...settings import CONFIG_FILE, TeacherForcedKLSettings
from .options import SETTING_FLAGS

#: How the launcher names 1.4.0's default KL prompts in an error.
LEGACY_DEFAULT_PROMPTS = (
    "good_evaluation_prompts (heretic-llm 1.4.0's KL prompts unless "
    f"[{SETTINGS_TABLE}] prompts is set)"
)


def check_kl_prompt_file(
    settings: TeacherForcedKLSettings,
    prompts_set_explicitly: bool,
    setting_flags: dict[str, Any],
    default_prompts: Any | None = None,
) -> None:
    """
    Stops with a one-line `UsageError` when the KL prompts are a bad local file.
    `default_prompts` is, on heretic-llm 1.4.0, the specification of its
    `good_evaluation_prompts` (None where 1.4.0 runs no study, and on heretic
    master, whose scorer defaults to a dataset ID that only loading can check).
    """
    if prompts_set_explicitly:
        dataset, split = settings.prompts.dataset, settings.prompts.split
        setting = (
            SETTING_FLAGS["prompts"]
            if "prompts" in setting_flags
            else f"{CONFIG_FILE} [{SETTINGS_TABLE}] prompts"
        )
    elif default_prompts is not None:
        dataset, setting = default_prompts.dataset, LEGACY_DEFAULT_PROMPTS
        split = default_prompts.split
    else:
        return
    try:
        check_prompt_file(dataset, setting, split)
    except ValueError as error:
        raise UsageError(str(error)) from None
