# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The settings model and `config.default.toml`, which documents it."""

import sys
from typing import Any

import pytest

from heretic_teacher_forced_kl.names import TEACHER_FORCED_KL_PLUGIN
from heretic_teacher_forced_kl.settings import (
    TeacherForcedKLSettings,
    validate_settings,
)
from tests.support.repository import REPOSITORY_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# The file at the top of the repository, which the package ships a copy of
# (tests/test_packaging.py checks the copy; `heretic-kl --print-config` prints it).
CONFIG_FILE = REPOSITORY_ROOT / "config.default.toml"


def documented_settings() -> list[tuple[str, str]]:
    """Each key of `[scorer.TeacherForcedKL]` with the comment block above it."""
    settings: list[tuple[str, str]] = []
    in_table = False
    comment: list[str] = []
    for line in CONFIG_FILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_table = stripped == "[scorer.TeacherForcedKL]"
            comment = []
        elif stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
        elif in_table and "=" in stripped:
            settings.append((stripped.split("=", 1)[0].strip(), " ".join(comment)))
            comment = []
        elif not stripped:
            comment = [] if not in_table else comment
    return settings


def test_config_lists_every_setting_in_code_order() -> None:
    names = [name for name, _ in documented_settings()]
    assert names == list(TeacherForcedKLSettings.model_fields)


@pytest.mark.parametrize("name", list(TeacherForcedKLSettings.model_fields))
def test_config_comment_is_the_setting_description(name: str) -> None:
    description = TeacherForcedKLSettings.model_fields[name].description
    assert description
    comment = dict(documented_settings())[name]
    assert " ".join(description.split()) in comment


def test_config_values_are_the_defaults() -> None:
    with CONFIG_FILE.open("rb") as file:
        config = tomllib.load(file)
    table = config["scorer"]["TeacherForcedKL"]
    defaults = TeacherForcedKLSettings().model_dump(mode="json", exclude_defaults=False)
    for name, value in table.items():
        expected = defaults[name]
        if isinstance(value, dict):
            assert {key: expected[key] for key in value} == value
        else:
            assert value == expected
    assert validate_settings(table) == TeacherForcedKLSettings()


def test_config_enables_the_plugin() -> None:
    with CONFIG_FILE.open("rb") as file:
        config = tomllib.load(file)
    assert TEACHER_FORCED_KL_PLUGIN in [
        scorer["plugin"] for scorer in config["scorers"]
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kl_tokens": 0}, "kl_tokens: Input should be greater than or equal to 1"),
        ({"kl_tokens": True}, "kl_tokens: Input should be a valid integer"),
        (
            {"position_weight_decay": 1.5},
            "position_weight_decay: Input should be less than or equal to 1",
        ),
        ({"batch_size": -1}, "batch_size: Input should be greater than or equal to 0"),
        (
            {"reference_storage": "gpu"},
            "reference_storage: Input should be 'auto', 'device' or 'cpu'",
        ),
        ({"kl_token": 3}, "kl_token: Extra inputs are not permitted"),
    ],
)
def test_invalid_settings_are_one_line_errors(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as error:
        validate_settings(table)
    text = str(error.value)
    assert text.startswith("config.toml [scorer.TeacherForcedKL] ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("kl_tokens", 0),
        ("kl_tokens", -3),
        ("kl_tokens", True),
        ("kl_tokens", 2.0),
        ("kl_tokens", "3"),
        ("position_weight_decay", 0.0),
        ("position_weight_decay", 1.5),
    ],
)
def test_the_engine_and_the_settings_model_apply_one_rule(
    name: str, value: Any
) -> None:
    # One rule per setting: the settings model, the engine (for library callers)
    # and `compare --kl-tokens` reject the same values with the same words.
    from heretic_teacher_forced_kl.metric.engine import TeacherForcedKLEngine
    from heretic_teacher_forced_kl.settings import validate_setting

    with pytest.raises(ValueError) as from_engine:
        TeacherForcedKLEngine(**{name: value})
    with pytest.raises(ValueError) as from_settings:
        validate_setting(name, value, name)
    assert str(from_engine.value) == str(from_settings.value)
