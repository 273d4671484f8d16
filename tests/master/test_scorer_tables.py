# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Typos in the scorer's `config.toml` tables stop the study at `init`.

heretic master keeps only the keys that the settings model knows before it
validates a plugin's table; the scorer therefore checks the raw tables that
heretic's settings hold. heretic's settings come here from heretic
master's own `Settings`, which keeps the extra tables of `config.toml`.
"""

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from heretic_teacher_forced_kl import TeacherForcedKL
from heretic_teacher_forced_kl.adapters.settings_tables import (
    check_settings_tables,
    plugin_class_name,
)
from heretic_teacher_forced_kl.cli.launcher.config import (
    effective_settings,
    read_config_file,
)
from heretic_teacher_forced_kl.errors import UsageError
from heretic_teacher_forced_kl.names import TEACHER_FORCED_KL_PLUGIN
from heretic_teacher_forced_kl.settings import TeacherForcedKLSettings

SCORER_ENTRY = f'{{ plugin = "{TEACHER_FORCED_KL_PLUGIN}", optimization = "minimize" }}'


def host_settings(directory: Path, config: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """heretic master's settings for `config` as `config.toml`."""
    from heretic.config import Settings

    (directory / "config.toml").write_text(config)
    monkeypatch.chdir(directory)
    monkeypatch.setattr(sys, "argv", ["heretic", "--model", "owner/model"])
    return Settings()  # type: ignore[call-arg]


def scorer_as_heretic_builds_it(heretic_settings: Any) -> TeacherForcedKL:
    """The scorer with its table validated as heretic's evaluator does: unknown keys dropped."""
    table = (
        (heretic_settings.model_extra or {})
        .get("scorer", {})
        .get("TeacherForcedKL", {})
    )
    known = {
        key: value
        for key, value in table.items()
        if key in TeacherForcedKLSettings.model_fields
    }
    return TeacherForcedKL(
        heretic_settings=heretic_settings,
        settings=TeacherForcedKL.validate_settings(known),
    )


def init_error(scorer: TeacherForcedKL) -> str:
    """The one-line message with which `init` stops (the context holds no model)."""
    with pytest.raises(ValueError) as error:
        scorer.init(SimpleNamespace(_model=None))
    message = str(error.value)
    assert "\n" not in message
    return message


def test_misspelled_key_stops_init_with_the_launchers_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = f"scorers = [{SCORER_ENTRY}]\n[scorer.TeacherForcedKL]\nkl_token = 5\n"
    heretic_settings = host_settings(tmp_path, config, monkeypatch)
    scorer = scorer_as_heretic_builds_it(heretic_settings)
    # heretic dropped the typo: the scorer would run with the default 3 tokens.
    assert scorer.settings.kl_tokens == 3
    message = init_error(scorer)
    assert message == (
        "config.toml [scorer.TeacherForcedKL] kl_token: Extra inputs are not "
        "permitted (got 5) (heretic-kl --print-config describes every setting)."
    )
    # heretic-kl gives the very same line for the same config.toml.
    with pytest.raises(UsageError) as launcher_error:
        effective_settings(read_config_file(), {})
    assert str(launcher_error.value) == message


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        pytest.param(
            "[scorer.TeacherForcedKL]\nkl_tokens = 3\n"
            "[scorer.TeacherForcedKL_long]\nkl_tokens = 8\nposition_weight_decy = 0.9\n",
            "config.toml [scorer.TeacherForcedKL_long] position_weight_decy: "
            "Extra inputs are not permitted (got 0.9)",
            id="misspelled key of an instance table",
        ),
        pytest.param(
            "[scorer.TeacherForcedKL_lnog]\nkl_tokens = 8\n",
            "config.toml [scorer.TeacherForcedKL_lnog]: no entry of scorers runs "
            "TeacherForcedKL with instance_name 'lnog' (configured instance names: long)",
            id="table of no configured instance",
        ),
    ],
)
def test_bad_instance_table_stops_init(
    tables: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = (
        "scorers = [\n"
        f'    {{ plugin = "{TEACHER_FORCED_KL_PLUGIN}", optimization = "minimize", '
        'instance_name = "long" },\n'
        "]\n" + tables
    )
    heretic_settings = host_settings(tmp_path, config, monkeypatch)
    message = init_error(scorer_as_heretic_builds_it(heretic_settings))
    assert message.startswith(expected)


def test_valid_tables_pass_and_init_goes_on_to_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = (
        "scorers = [\n"
        f"    {SCORER_ENTRY},\n"
        f'    {{ plugin = "{TEACHER_FORCED_KL_PLUGIN}", optimization = "none", '
        'instance_name = "long" },\n'
        '    { plugin = "my_package.TeacherForcedKL_v2", optimization = "none" },\n'
        "]\n"
        "[scorer.TeacherForcedKL]\nkl_tokens = 4\n"
        "[scorer.TeacherForcedKL_long]\nkl_tokens = 8\n"
        # The table of another plugin whose class name starts the same way.
        "[scorer.TeacherForcedKL_v2]\nanything = 1\n"
        "[scorer.KLDivergence]\nother_plugins_keys = 1\n"
    )
    heretic_settings = host_settings(tmp_path, config, monkeypatch)
    check_settings_tables(heretic_settings, "TeacherForcedKL")
    scorer = scorer_as_heretic_builds_it(heretic_settings)
    with pytest.raises(RuntimeError, match="needs the model"):
        scorer.init(SimpleNamespace(_model=None))


def test_non_table_is_a_one_line_error() -> None:
    heretic_settings = SimpleNamespace(
        model_extra={"scorer": {"TeacherForcedKL": 3}}, scorers=[]
    )
    with pytest.raises(
        ValueError, match=r"^config.toml \[scorer.TeacherForcedKL\] must be a table.$"
    ):
        check_settings_tables(heretic_settings, "TeacherForcedKL")


def test_settings_without_tables_pass() -> None:
    # heretic-llm 1.4.0's settings have no extra tables; a fork may pass none at all.
    check_settings_tables(SimpleNamespace(model_extra=None), "TeacherForcedKL")
    check_settings_tables(None, "TeacherForcedKL")


@pytest.mark.parametrize(
    ("plugin", "class_name"),
    [
        ("heretic_teacher_forced_kl.TeacherForcedKL", "TeacherForcedKL"),
        ("path/to/scorer.py:TeacherForcedKL", "TeacherForcedKL"),
        ("C:\\plugins\\scorer.py:Mine", "Mine"),
    ],
)
def test_plugin_class_name(plugin: str, class_name: str) -> None:
    assert plugin_class_name(plugin) == class_name
