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
  join its `[scorer.<ClassName>]` table (`adapters.plugin_host`).
"""

import json
import sys
from typing import Any

from ...errors import UsageError
from ...names import BUILT_IN_KL_PLUGIN, TEACHER_FORCED_KL_PLUGIN
from ..model_sources import resolve_source
from .config import effective_settings, read_config_file
from .heretic_arguments import model_argument, option_value, without_option
from .options import LaunchOptions, build_parser, parse_arguments
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


def launch(arguments: list[str]) -> None:
    """Runs heretic as `heretic-kl` with `arguments`."""
    if "-h" in arguments or "--help" in arguments:
        print_help()
        return
    options = parse_arguments(arguments)
    config = read_config_file()
    check_model(model_argument(options.heretic_arguments, config))
    check_model(
        option_value(options.heretic_arguments, "--evaluate-model"), "--evaluate-model"
    )
    # Imported only now, so that bad input is answered before heretic loads.
    from ...adapters.host import unwrap_heretic_console
    from ...adapters.plugin_api import HAS_PLUGIN_API

    unwrap_heretic_console()

    if HAS_PLUGIN_API:
        launch_plugin_host(options, config)
    else:
        launch_legacy_host(options, config)


def launch_legacy_host(options: LaunchOptions, config: dict[str, Any]) -> None:
    """Runs heretic-llm 1.4.0 with the chosen scorer."""
    from ...adapters.legacy.launch import run_legacy_host

    if options.scorer.plugin not in (TEACHER_FORCED_KL_PLUGIN, BUILT_IN_KL_PLUGIN):
        raise UsageError(
            f"--scorer {options.scorer.name}: heretic-llm 1.4.0 has no plugin API; "
            "it runs teacher-forced-kl or kl-divergence only (install heretic with the "
            "plugin API for other scorers)."
        )
    if options.scorer.is_teacher_forced_kl:
        settings, prompts_set_explicitly = effective_settings(
            config, options.setting_flags
        )
        check_kl_prompt_file(
            settings,
            prompts_set_explicitly,
            options.setting_flags,
            options.heretic_arguments,
            legacy_host=True,
        )
        run_legacy_host(
            options.heretic_arguments,
            settings,
            prompts_set_explicitly,
            options.non_interactive,
        )
    else:
        run_legacy_host(options.heretic_arguments, None, False, options.non_interactive)


def launch_plugin_host(options: LaunchOptions, config: dict[str, Any]) -> None:
    """Runs heretic with the plugin API, the chosen scorer in place of the built-in KL."""
    import heretic.main as heretic_main

    from ...adapters.plugin_host import run_plugin_host

    if options.scorer.is_teacher_forced_kl:
        # Validate now, before any model is loaded, with the table heretic will see.
        settings, prompts_set_explicitly = effective_settings(
            config, options.setting_flags
        )
        check_kl_prompt_file(
            settings,
            prompts_set_explicitly,
            options.setting_flags,
            options.heretic_arguments,
            legacy_host=False,
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
    # The scorers go first: heretic takes a trailing argument that is not a flag as MODEL.
    arguments = [
        "--scorers",
        json.dumps(scorers),
        *without_option(options.heretic_arguments, "--scorers"),
    ]
    run_plugin_host(
        arguments,
        options.scorer.class_name,
        options.setting_flags,
        options.non_interactive,
    )
