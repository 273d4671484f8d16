# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Running heretic with the chosen scorer, on either host.

Everything that can be checked is checked before heretic is imported: the
options, `config.toml`, the model argument and the scorer settings. Then:

- heretic-llm 1.4.0 (no plugin API): `adapters.legacy.launch` runs 1.4.0 with
  an evaluator that measures teacher-forced KL (or 1.4.0's own first-token KL).
- heretic with the plugin API: the chosen scorer takes the place of the
  built-in KL scorer in `scorers` (other scorers stay), and the flag settings
  join its `[scorer.<ClassName>]` table, and heretic is driven through its own
  settings (`adapters.plugin_host`).
"""

import json
import os
import re
import sys
from types import SimpleNamespace
from typing import Any

from ...adapters.saving import SavePlan, check_free
from ...console import print
from ...errors import UsageError
from ...names import (
    BUILT_IN_KL_NAME,
    BUILT_IN_KL_PLUGIN,
    TEACHER_FORCED_KL_NAME,
    TEACHER_FORCED_KL_PLUGIN,
)
from ...settings import TeacherForcedKLSettings
from ..model_sources import resolve_source
from .config import (
    CONFIG_FILE,
    config_scorer_table,
    effective_settings,
    read_config_file,
)
from .heretic_arguments import model_argument, option_value, without_option
from .heretic_settings import check_heretic_settings
from .options import (
    HERETIC_SAVING_SETTINGS,
    SETTING_FLAGS,
    LaunchOptions,
    build_parser,
    parse_arguments,
)
from .prompt_files import check_kl_prompt_file
from .scorers import current_scorers, replace_kl_scorer


def print_help() -> None:
    """Prints the launcher's options, then heretic's own help."""
    build_parser().print_help()
    print()
    print("heretic's options (all accepted by heretic-kl):")
    print()
    sys.stdout.flush()
    sys.argv = ["heretic", "--help"]
    # heretic parses its command line, prints its help and exits when
    # `heretic.main` is imported with --help on the command line.
    import heretic.main  # noqa: F401


def check_model(model: str | None, name: str = "MODEL") -> None:
    """
    Stops with a one-line error when the model is a local path that does not
    exist or is not a model folder (heretic needs its config.json).
    """
    if model:
        resolve_source(model, name, allow_adapter=False)


def check_saving_settings(options: LaunchOptions, config: dict[str, Any]) -> None:
    """
    Stops with a one-line error when `--save-to` meets heretic's own settings for
    choosing and saving a trial without menus (heretic master's `--trial-index`,
    `--model-action`, `--save-directory`): each would answer heretic's menus its own way.
    """
    if options.save_to is None:
        return
    for setting in HERETIC_SAVING_SETTINGS:
        flag = "--" + setting.replace("_", "-")
        if option_value(options.heretic_arguments, flag) is not None:
            where = flag
        elif os.environ.get("HERETIC_" + setting.upper()):
            where = "HERETIC_" + setting.upper()
        elif setting in config:
            where = f"{setting} in {CONFIG_FILE}"
        else:
            continue
        raise UsageError(
            f"--save-to: heretic's {where} is set too; use either --save-to "
            "(with --save-trials) or heretic's own trial_index, model_action and "
            "save_directory."
        )


def is_non_interactive(
    options: LaunchOptions, menus_read_standard_input: bool = False
) -> bool:
    """
    Whether the run is non-interactive: with `--non-interactive` or `--save-to`,
    and, saying so in one line, when standard input is not a terminal (unless
    heretic reads its menus' answers from standard input).
    """
    if options.non_interactive or menus_read_standard_input:
        return options.non_interactive
    if sys.stdin is None or not sys.stdin.isatty():
        print(
            "heretic-kl: standard input is not a terminal, so this run is "
            "non-interactive (as with --non-interactive; --save-to DIR saves models).",
            soft_wrap=True,
        )
        return True
    return False


def check_save_targets(options: LaunchOptions) -> None:
    """
    Stops with a one-line error, before the study or any save starts, when
    `--save-to DIR` holds a `trial-N` folder with files that this run could
    save into: those of `--save-trials`, or any `trial-N` when every
    Pareto-optimal trial is to be saved (a new save never mixes with an old one).
    """
    if options.save_to is None or not options.save_to.is_dir():
        return
    if options.save_trials is not None:
        folders = [options.save_to / f"trial-{trial}" for trial in options.save_trials]
    else:
        folders = sorted(
            folder
            for folder in options.save_to.iterdir()
            if re.fullmatch(r"trial-\d+", folder.name)
        )
    for folder in folders:
        check_free(folder)


def requested_export_strategy(options: LaunchOptions, config: dict[str, Any]) -> str:
    """
    heretic's `export_strategy` as this run gives it (`--export-strategy`,
    `HERETIC_EXPORT_STRATEGY` or `config.toml`), "merge" where unset. heretic
    validates it; a continued study asks for it, and `--save-to` answers with it.
    """
    value = (
        option_value(options.heretic_arguments, "--export-strategy")
        or os.environ.get("HERETIC_EXPORT_STRATEGY")
        or config.get("export_strategy")
    )
    return str(value).lower() if value else "merge"


def launch(arguments: list[str]) -> int:
    """Runs heretic as `heretic-kl` with `arguments` and returns the exit status."""
    if "-h" in arguments or "--help" in arguments:
        print_help()
        return 0
    options = parse_arguments(arguments)
    config = read_config_file()
    check_model(model_argument(options.heretic_arguments, config))
    check_model(
        option_value(options.heretic_arguments, "--evaluate-model"), "--evaluate-model"
    )
    check_saving_settings(options, config)
    check_save_targets(options)
    heretic_settings = check_heretic_settings(options.heretic_arguments)
    # Imported only now, so that bad input is answered before heretic loads.
    from ...adapters.host import unwrap_heretic_console
    from ...adapters.plugin_api import HAS_PLUGIN_API

    unwrap_heretic_console()

    if not HAS_PLUGIN_API:
        return launch_legacy_host(options, config, heretic_settings)
    return launch_plugin_host(options, config, heretic_settings)


def setting_sources(options: LaunchOptions, config: dict[str, Any]) -> dict[str, str]:
    """Where the run's scorer and each scorer setting came from: a flag or `config.toml`."""
    sources = {name: CONFIG_FILE for name in config_scorer_table(config)}
    sources.update({name: SETTING_FLAGS[name] for name in options.setting_flags})
    if options.scorer_given:
        sources["scorer"] = "--scorer"
    return sources


def checked_scorer_settings(
    options: LaunchOptions,
    config: dict[str, Any],
    default_prompts: Any | None = None,
) -> tuple[TeacherForcedKLSettings, bool]:
    """
    The teacher-forced scorer's settings from `config.toml` and the flags, and
    whether the prompts were set explicitly, with a local prompt file checked
    before any model loads (`default_prompts`: see `check_kl_prompt_file`).
    """
    settings, prompts_set_explicitly = effective_settings(config, options.setting_flags)
    check_kl_prompt_file(
        settings, prompts_set_explicitly, options.setting_flags, default_prompts
    )
    return settings, prompts_set_explicitly


def launch_legacy_host(
    options: LaunchOptions, config: dict[str, Any], heretic_settings: Any | None
) -> int:
    """
    Runs heretic-llm 1.4.0 with the chosen scorer; returns the exit status.
    `heretic_settings` are 1.4.0's settings as its run will read them (None
    where it runs no study).
    """
    from ...adapters.legacy.launch import menus_read_standard_input, run_legacy_host
    from ...adapters.legacy.menus import NonInteractiveMenus as LegacyMenus
    from ...adapters.legacy.study import Measure

    if options.scorer.plugin not in (TEACHER_FORCED_KL_PLUGIN, BUILT_IN_KL_PLUGIN):
        raise UsageError(
            f"--scorer {options.scorer.name}: heretic-llm 1.4.0 has no plugin API; "
            "it runs teacher-forced-kl or kl-divergence only (install heretic with the "
            "plugin API for other scorers)."
        )
    if options.scorer.is_teacher_forced_kl:
        settings, prompts_set_explicitly = checked_scorer_settings(
            options,
            config,
            # Unless prompts are set, 1.4.0's scorer measures on its
            # good_evaluation_prompts, which 1.4.0 reads only after the model.
            None
            if heretic_settings is None
            else heretic_settings.good_evaluation_prompts,
        )
        requested = Measure(TEACHER_FORCED_KL_NAME, settings, prompts_set_explicitly)
    else:
        requested = Measure(BUILT_IN_KL_NAME)
    menus = None
    if is_non_interactive(options, menus_read_standard_input()):
        menus = LegacyMenus(
            save_plan=None
            if options.save_to is None
            else SavePlan(
                directory=options.save_to,
                trials=options.save_trials,
                export_strategy=requested_export_strategy(options, config),
            )
        )
    run_legacy_host(
        options.heretic_arguments,
        requested,
        setting_sources(options, config),
        menus,
    )
    return 0 if menus is None else menus.finish()


def launch_plugin_host(
    options: LaunchOptions, config: dict[str, Any], heretic_settings: Any | None
) -> int:
    """
    Runs heretic with the plugin API, the chosen scorer in place of the built-in
    KL, and returns the exit status. `heretic_settings` are heretic's settings
    as its run will read them (None where it runs no study).
    """
    import heretic.main as heretic_main

    from ...adapters.plugin_host import MasterRun
    from ...adapters.settings_tables import check_settings_tables

    settings = None
    check_prompts = None
    if options.scorer.is_teacher_forced_kl:
        # Validate now, before any model is loaded, with the table heretic will see.
        settings, prompts_set_explicitly = effective_settings(
            config, options.setting_flags
        )

        def check_prompts() -> None:
            # Only where the run measures with these prompts (not a continued
            # study, which keeps its own), still before any model is loaded.
            check_kl_prompt_file(
                settings, prompts_set_explicitly, options.setting_flags
            )

    default = [
        dict(entry) if isinstance(entry, dict) else entry.model_dump()
        for entry in heretic_main.Settings.model_fields["scorers"].get_default(
            call_default_factory=True
        )
    ]
    scorers = replace_kl_scorer(
        current_scorers(options.heretic_arguments, config, default),
        options.scorer.plugin,
    )
    if options.scorer.is_teacher_forced_kl:
        # The scorer's tables as heretic will hand them over, checked before the
        # model loads (the scorer checks them again at `init` without the launcher).
        check_settings_tables(
            SimpleNamespace(model_extra=config, scorers=scorers),
            options.scorer.class_name,
        )
    # One argument, `--scorers=JSON`, first: heretic takes a trailing argument that
    # is not a flag as MODEL, so with the model only in config.toml or
    # HERETIC_MODEL a separate JSON value would become `--model JSON`.
    arguments = [
        "--scorers=" + json.dumps(scorers),
        *without_option(options.heretic_arguments, "--scorers"),
    ]
    save_plan = (
        None
        if options.save_to is None
        else SavePlan(
            directory=options.save_to,
            trials=options.save_trials,
            export_strategy=requested_export_strategy(options, config),
        )
    )
    return MasterRun(
        arguments=arguments,
        plugin=options.scorer.plugin,
        setting_flags=options.setting_flags,
        settings=settings,
        check_prompts=check_prompts,
        sources=setting_sources(options, config),
        heretic_settings=heretic_settings,
        non_interactive=is_non_interactive(options),
        save_plan=save_plan,
    ).run()
