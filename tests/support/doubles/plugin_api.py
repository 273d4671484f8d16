# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
A test double of heretic master's scorer plugin API, for hosts without it.

heretic-llm 1.4.0, the release CI installs, has no `heretic.plugin` or
`heretic.scorer`. This double follows `shared/heretic-host-api.md` exactly
and nothing more: `Score`, `Scorer(Plugin, ABC)`, `Plugin` (no `__init__` in
subclasses, a `settings: BaseModel` annotation, `reproducible`,
`heretic_settings`), `load_plugin(name, base_class)` for the import-path and
file-path forms, `get_plugin_namespace`, and `Context`. `install()` registers
it as `heretic.plugin` and `heretic.scorer`; only tests call it, and only when
the real modules are missing. The package itself never imports this file.
"""

import importlib
import importlib.util
import inspect
import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel

PluginType = TypeVar("PluginType")


def get_plugin_namespace(
    model_extra: dict[str, Any] | None, namespace: str
) -> dict[str, Any]:
    """Returns the `[namespace]` table (dotted) of heretic's extra settings, or {}."""
    table: Any = model_extra or {}
    for part in namespace.split("."):
        if not isinstance(table, dict):
            return {}
        table = table.get(part)
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise TypeError(f"Plugin namespace [{namespace}] must be a table")
    return table


def load_plugin(name: str, base_class: type[PluginType]) -> type[PluginType]:
    """Loads `package.module.ClassName` or `path/to/file.py:ClassName` and checks its base."""
    if ":" in name:
        file_name, class_name = name.rsplit(":", 1)
        if not file_name.endswith(".py") or not class_name:
            raise ValueError(
                "File-based plugin must use the form 'path/to/plugin.py:ClassName'"
            )
        path = Path(file_name)
        if not path.is_absolute():
            path = Path.cwd() / path
        path = path.resolve()
        if not path.is_file():
            raise ImportError(f"Plugin file '{path}' does not exist")
        module_name = f"heretic_plugin_{path}"
        module = sys.modules.get(module_name)
        if module is None:
            specification = importlib.util.spec_from_file_location(module_name, path)
            assert specification is not None and specification.loader is not None
            module = importlib.util.module_from_spec(specification)
            sys.modules[module_name] = module
            specification.loader.exec_module(module)
    else:
        if "." not in name:
            raise ValueError("Import-based plugin must use the form 'module.ClassName'")
        module_name, class_name = name.rsplit(".", 1)
        module = importlib.import_module(module_name)
    plugin_class = getattr(module, class_name, None)
    if not inspect.isclass(plugin_class):
        raise ValueError(
            f"Plugin '{name}' does not export a class named '{class_name}'"
        )
    if not issubclass(plugin_class, base_class):
        raise TypeError(f"Plugin '{name}' must subclass {base_class.__name__}")
    return plugin_class


class Context:
    """The runtime context heretic passes to plugins; it holds the model privately."""

    def __init__(self, settings: Any, model: Any) -> None:
        self._model = model
        self._settings = settings

    def get_responses(self, prompts: list[Any]) -> list[str]:
        return self._model.get_responses_batched(prompts, skip_special_tokens=True)

    def get_logits(self, prompts: list[Any]) -> Any:
        # heretic-llm 1.4.0's model offers first-token log-probabilities, whose
        # log-softmax equals that of the first-token logits heretic master returns.
        return self._model.get_logprobs_batched(prompts)

    def get_residuals(self, prompts: list[Any]) -> Any:
        return self._model.get_residuals_batched(prompts)

    def load_prompts(self, specification: Any) -> list[Any]:
        from heretic.utils import load_prompts

        return load_prompts(self._settings, specification)


class Plugin:
    """Base class of heretic plugins."""

    @property
    def reproducible(self) -> bool:
        return False

    def __init__(
        self, *, heretic_settings: Any, settings: BaseModel | None = None
    ) -> None:
        model = self.__class__.get_settings_model()
        if model is not None:
            if settings is None:
                raise ValueError(
                    f"{self.__class__.__name__} requires settings to be validated"
                )
            if not isinstance(settings, model):
                raise TypeError(
                    f"{self.__class__.__name__}.settings must be a {model.__name__}"
                )
        self.settings = settings
        self.heretic_settings = heretic_settings

    @classmethod
    def validate_contract(cls) -> None:
        if "__init__" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must not define __init__()")

    @classmethod
    def get_settings_model(cls) -> type[BaseModel] | None:
        annotation = get_type_hints(cls, include_extras=True).get("settings")
        if annotation is None:
            return None
        if get_origin(annotation) in (Union, types.UnionType) and type(
            None
        ) in get_args(annotation):
            raise TypeError(f"{cls.__name__}.settings must not be Optional")
        if not isinstance(annotation, type) or not issubclass(annotation, BaseModel):
            raise TypeError(
                f"{cls.__name__}.settings must be a pydantic.BaseModel subclass"
            )
        return annotation

    @classmethod
    def validate_settings(
        cls, raw_namespace: dict[str, Any] | None
    ) -> BaseModel | None:
        model = cls.get_settings_model()
        if model is None:
            return None
        return model.model_validate(raw_namespace or {})

    def init(self, ctx: Context) -> None:
        return None


@dataclass
class Score:
    """The result of a scorer."""

    value: float
    rich_display: str
    md_display: str


class Scorer(Plugin, ABC):
    """Abstract base class of scorer plugins."""

    @property
    def score_name(self) -> str:
        return self.__class__.__name__

    def __init__(
        self, heretic_settings: Any, settings: BaseModel | None = None
    ) -> None:
        super().__init__(heretic_settings=heretic_settings, settings=settings)

    @abstractmethod
    def get_score(self, ctx: Context) -> Score: ...

    def get_baseline_score(self, ctx: Context) -> Score:
        return self.get_score(ctx)


def install() -> None:
    """Registers the double as `heretic.plugin` and `heretic.scorer`, if they are missing."""
    import heretic

    if importlib.util.find_spec("heretic.scorer") is not None:
        raise RuntimeError(
            "The installed heretic has the plugin API; test against it instead."
        )
    plugin_module = types.ModuleType("heretic.plugin")
    scorer_module = types.ModuleType("heretic.scorer")
    for name in ("Context", "Plugin", "get_plugin_namespace", "load_plugin"):
        setattr(plugin_module, name, globals()[name])
    for name in ("Context", "Score", "Scorer"):
        setattr(scorer_module, name, globals()[name])
    sys.modules["heretic.plugin"] = plugin_module
    sys.modules["heretic.scorer"] = scorer_module
    heretic.plugin = plugin_module  # type: ignore[attr-defined]
    heretic.scorer = scorer_module  # type: ignore[attr-defined]
