# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Running heretic master (the host with the plugin API) with the chosen scorer.

heretic is driven through its own settings, never through its menus. A
non-interactive run gives heretic `checkpoint_action = "continue"` (where a
study waits in the checkpoint), and to end after the study `trial_index = 0`
with `model_action = ""` ("return to the trial selection menu", which with a
trial index ends the run); `--save-to` then runs heretic once more for each
trial to save, continuing the finished study with `trial_index` (the trial's
place in heretic's sorted Pareto front), `model_action = "save"`,
`save_directory` (a temporary folder beside the target, renamed into place
once the saved model loads: `adapters.saving`) and `export_strategy`. The
Pareto front is read from heretic's checkpoint (`adapters.checkpoint`) and
printed under heretic's own objective names.

What this replaces inside heretic, in `run_heretic` only, while heretic runs
(restored afterwards), checked by the tests against the real heretic master:

- `heretic.main.Settings`, by a subclass (`host_settings`) that adds the flag
  settings to the scorer's `[scorer.<ClassName>]` table and a record of the KL
  prompts' content to the settings saved with the study, and that applies the
  run's control settings (above) also where heretic continues a study with
  its saved settings (`Settings.model_validate_json`), without saving them with
  the study (so that plain heretic continuing it later asks as usual).

Nothing else of heretic is replaced (torch's gradient mode, which heretic
turns off, is given back afterwards). What this relies on that heretic does not
promise: the settings named above and how `heretic.main.run` uses them; the
name and the Optuna journal format of heretic's checkpoint, its study user
attributes ("settings", "finished") and trial user attributes ("index",
"scores"), and how its trial menu sorts the Pareto front (`adapters.checkpoint`).
Building its menus' questions even when a setting answers them, heretic makes
prompt_toolkit print "Warning: Input is not a terminal" once without a terminal.
"""

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from ..console import print, say
from ..errors import UsageError
from ..names import (
    BUILT_IN_KL_NAME,
    BUILT_IN_KL_PLUGIN,
    TEACHER_FORCED_KL_CLASS_NAME,
    TEACHER_FORCED_KL_NAME,
    TEACHER_FORCED_KL_PLUGIN,
)
from ..prompts import prompt_file_digest
from ..settings import MEASURE_FIELDS, TeacherForcedKLSettings, validate_settings
from .checkpoint import Study, checkpoint_file, read_study
from .saving import SavePlan, numbers
from .settings_sources import (
    ConstantSource,
    settings_with_scorer_table,
    settings_with_sources,
)

#: The extra setting, saved with the study by heretic, in which the launcher
#: records the SHA-256 of the KL prompt file the study was begun with.
STUDY_RECORD = "heretic_teacher_forced_kl"

#: heretic's settings that steer one run, which are never saved with a study.
NOT_SAVED = ("checkpoint_action", "trial_index", "model_action", "n_additional_trials")


def host_settings(
    base: type,
    class_name: str,
    flag_table: dict[str, Any],
    control: dict[str, Any],
    record: dict[str, Any],
    resumed_table: dict[str, Any] | None = None,
) -> type:
    """
    heretic master's `Settings` for one launcher run (see the module docstring):
    `flag_table` joins `[scorer.<class_name>]`; `control` holds heretic's settings
    that steer this run; `record` is saved with a new study; `resumed_table`
    replaces settings of the scorer table of a continued study.
    """
    if flag_table:
        base = settings_with_scorer_table(base, class_name, flag_table)

    def add_sources(settings_cls: Any, sources: tuple[Any, ...]) -> tuple[Any, ...]:
        # The control settings rank above every source but init values, which
        # heretic uses only to resume; the record below all.
        return (
            sources[0],
            ConstantSource(settings_cls, control),
            *sources[1:],
            ConstantSource(settings_cls, {STUDY_RECORD: record}),
        )

    class Settings(settings_with_sources(base, add_sources)):  # type: ignore[misc]
        @classmethod
        def model_validate_json(cls, json_data: Any, **options: Any) -> Any:
            # heretic continues a study with exactly the settings saved with it.
            values = json.loads(json_data)
            values.update(control)
            if resumed_table:
                table = values.setdefault("scorer", {}).setdefault(class_name, {})
                table.update(resumed_table)
            return cls.model_validate(values, **options)

        def model_dump_json(self, **options: Any) -> str:
            excluded = set(options.pop("exclude", None) or ()) | set(NOT_SAVED)
            return str(super().model_dump_json(exclude=excluded, **options))

    return Settings


def run_heretic(arguments: list[str], settings_class: type) -> None:
    """Runs heretic master's `main` once with `arguments` and `settings_class`."""
    import heretic.main as heretic_main
    import torch

    original = heretic_main.Settings
    # heretic turns gradients off for good; a caller in the same process
    # (`cli.main.main` in a test, a notebook) gets its mode back.
    gradients = torch.is_grad_enabled()
    sys.argv = ["heretic", *arguments]
    heretic_main.Settings = settings_class
    try:
        heretic_main.main()
    finally:
        heretic_main.Settings = original
        torch.set_grad_enabled(gradients)


@dataclass
class MasterRun:
    """One `heretic-kl` run on heretic master."""

    #: heretic's command line, the chosen scorer already in `--scorers`.
    arguments: list[str]

    #: The scorer heretic runs in place of its KL scorer.
    plugin: str

    #: The teacher-forced settings given by flags (joined to its table).
    setting_flags: dict[str, Any]

    #: The teacher-forced settings of this run, when it runs teacher-forced KL.
    settings: TeacherForcedKLSettings | None

    #: heretic's settings as its run will read them (the launcher's check), or
    #: None where heretic runs no study.
    heretic_settings: Any | None

    #: Checks the requested KL prompt file (one line when bad), where a new
    #: study will measure with it.
    check_prompts: Callable[[], None] | None = None

    #: Where each requested setting came from (a flag or `config.toml`).
    sources: dict[str, str] = field(default_factory=dict)

    #: Whether heretic runs without a terminal.
    non_interactive: bool = False

    #: The trials to save, with `--save-to`.
    save_plan: SavePlan | None = None

    def settings_class(
        self, control: dict[str, Any], resumed_table: dict[str, Any] | None = None
    ) -> type:
        """heretic's `Settings` for one heretic run of this launcher run."""
        import heretic.main as heretic_main

        dataset = None if self.settings is None else self.settings.prompts.dataset
        return host_settings(
            heretic_main.Settings,
            TEACHER_FORCED_KL_CLASS_NAME,
            self.setting_flags,
            control,
            {"prompts_sha256": prompt_file_digest(dataset)},
            resumed_table,
        )

    def run(self) -> int:
        """Runs heretic as planned and returns the exit status."""
        from .scorer import TeacherForcedKL

        TeacherForcedKL.measuring = True
        current = self.heretic_settings
        if current is None or any(
            getattr(current, name, None) is not None
            for name in ("evaluate_model", "reproduce", "collect_reproducibles")
        ):
            # Not a study: heretic runs as it is.
            run_heretic(self.arguments, self.settings_class({}))
            return 0
        path = checkpoint_file(current.study_checkpoint_dir, current.model)
        action = current.checkpoint_action
        if action is None and self.non_interactive:
            action = "continue"
        study = None if action == "restart" else read_study(path)
        resumed_table = None
        control: dict[str, Any] = {}
        if study is None or action != "continue":
            if self.check_prompts is not None:
                self.check_prompts()
        if study is not None:
            resumed_table = self.check_continued_study(study, action == "continue")
            if self.non_interactive and current.checkpoint_action is None:
                control["checkpoint_action"] = "continue"
                say(
                    "Non-interactive run: continuing the study found in the "
                    f"checkpoint {escape(str(path))}, with the settings saved with it "
                    "(--checkpoint-action restart starts afresh)."
                )
        if not self.non_interactive:
            run_heretic(self.arguments, self.settings_class(control, resumed_table))
            return 0
        if study is None or not study.finished:
            # The study; then heretic restores the first trial of the front and,
            # told to do nothing with it, ends (unless told otherwise). A
            # finished study needs no heretic run to show its front.
            if current.trial_index is None:
                control["trial_index"] = 0
            if current.model_action is None:
                control["model_action"] = ""
            run_heretic(self.arguments, self.settings_class(control, resumed_table))
            study = read_study(path)
            if study is None or not study.front:
                say("[red]heretic-kl: the study ended without a completed trial.[/]")
                return 1
        print_front(study)
        if not study.finished:
            say(
                "[yellow]The study stopped before its last trial (interrupted?); run "
                "the same command again to continue it from its checkpoint.[/]"
            )
        if self.save_plan is None:
            say(
                "Non-interactive run: exiting after the study. To save models, run "
                "the same command again with --save-to DIR: the study continues "
                "from its checkpoint and goes straight to saving."
            )
            return 0
        return self.save(study, resumed_table)

    def check_continued_study(
        self, study: Study, continuing: bool
    ) -> dict[str, Any] | None:
        """
        Stops with one line when the study in the checkpoint measures damage
        otherwise than this run asks; when it is continued, says which requested
        settings its saved ones override, and returns the replacement of the
        saved prompts' path where the same prompts now lie elsewhere.
        """
        saved_plugins = [
            entry.get("plugin") for entry in study.settings.get("scorers", [])
        ]
        saved = (
            TEACHER_FORCED_KL_NAME
            if TEACHER_FORCED_KL_PLUGIN in saved_plugins
            else BUILT_IN_KL_NAME
            if BUILT_IN_KL_PLUGIN in saved_plugins
            else None
        )
        requested = {
            TEACHER_FORCED_KL_PLUGIN: TEACHER_FORCED_KL_NAME,
            BUILT_IN_KL_PLUGIN: BUILT_IN_KL_NAME,
        }.get(self.plugin)
        if saved != requested and saved is not None and requested is not None:
            raise UsageError(
                f"the study in the checkpoint was begun with --scorer {saved}, and "
                f"this run asks for --scorer {requested}; one study cannot mix two "
                f"damage measures. Run with --scorer {saved} to continue it, or with "
                "--checkpoint-action restart to start afresh."
            )
        if not continuing or saved != TEACHER_FORCED_KL_NAME or self.settings is None:
            return None
        table = study.settings.get("scorer", {}).get(TEACHER_FORCED_KL_CLASS_NAME, {})
        try:
            saved_settings = validate_settings(table)
        except ValueError as error:
            raise UsageError(
                f"the study in the checkpoint has unreadable scorer settings ({error}); "
                "run with --checkpoint-action restart to start afresh."
            ) from None
        resumed = self.moved_prompts(study, saved_settings)
        ignored = [
            f"{name} = {getattr(self.settings, name)!r} "
            f"({self.sources.get(name, 'the default')})"
            for name in MEASURE_FIELDS
            if name != "prompts"
            and getattr(self.settings, name) != getattr(saved_settings, name)
        ]
        if resumed is None and self.settings.prompts != saved_settings.prompts:
            ignored.append(
                f"prompts = {self.settings.prompts.dataset!r} "
                f"({self.sources.get('prompts', 'the default')})"
            )
        if ignored:
            say(
                "[yellow]Continuing the study with the damage measure saved when it "
                f"began (kl_tokens = {saved_settings.kl_tokens}, prompts = "
                f"{escape(repr(saved_settings.prompts.dataset))}); ignoring what "
                f"differs: {escape(', '.join(ignored))}.[/]"
            )
        return resumed

    def moved_prompts(
        self, study: Study, saved: TeacherForcedKLSettings
    ) -> dict[str, Any] | None:
        """
        Where the saved KL prompt file is gone: the same prompts from this run's
        path (checked by content), or a one-line error. None when nothing moved.
        """
        assert self.settings is not None
        saved_path = saved.prompts.dataset
        digest = (study.settings.get(STUDY_RECORD) or {}).get("prompts_sha256")
        if digest is None or Path(saved_path).exists():
            return None
        if self.save_plan is not None and study.finished:
            # Saving from a finished study measures nothing: no prompts needed.
            return None
        given = self.settings.prompts.dataset
        if given == saved_path or prompt_file_digest(given) is None:
            raise UsageError(
                f"the study in the checkpoint measured KL on the prompt file "
                f"{saved_path!r}, which is gone; give the same prompts from their new "
                "place with --kl-prompts FILE to continue it, or run with "
                "--checkpoint-action restart to start afresh."
            )
        if prompt_file_digest(given) != digest:
            raise UsageError(
                f"--kl-prompts: {given!r} holds other prompts than {saved_path!r}, "
                "which the study in the checkpoint measured KL on; give the same "
                "prompts to continue it, or run with --checkpoint-action restart "
                "to start afresh."
            )
        say(
            f"Continuing the study with its KL prompts from {escape(repr(given))} "
            f"(the same content as {escape(repr(saved_path))}, which is gone)."
        )
        return {"prompts": {**saved.prompts.model_dump(mode="json"), "dataset": given}}

    def trials_to_save(self, study: Study) -> tuple[list[int], list[int]]:
        """The trials of the save plan on the Pareto front, and those off it."""
        assert self.save_plan is not None
        front = [trial.number for trial in study.front]
        if self.save_plan.trials is None:
            return front, []
        return (
            [trial for trial in self.save_plan.trials if trial in front],
            [trial for trial in self.save_plan.trials if trial not in front],
        )

    def save(self, study: Study, resumed_table: dict[str, Any] | None) -> int:
        """Saves each trial of the plan with one heretic run; returns the exit status."""
        from .scorer import TeacherForcedKL

        assert self.save_plan is not None
        if not study.finished:
            say(
                "[red]--save-to: no model saved; the study did not run all its trials "
                "(interrupted?). Run the same command again to finish it and save.[/]"
            )
            return 1
        chosen, off_front = self.trials_to_save(study)
        if off_front:
            say(
                f"[red]--save-trials: trial {numbers(off_front)} "
                f"{'is' if len(off_front) == 1 else 'are'} not on the Pareto front "
                f"(trials {numbers([trial.number for trial in study.front])}), so "
                "not saved.[/]"
            )
        saved: list[Path] = []
        failed = ""
        # Saving measures nothing: the scorer skips its prompts and reference.
        TeacherForcedKL.measuring = False
        try:
            for position, trial in enumerate(chosen):
                folder = self.save_trial(study, trial, resumed_table)
                if folder is None:
                    # A full disk or Ctrl+C (which heretic takes as "shut down")
                    # would fail the next save too: stop here.
                    failed = f"trial {numbers(chosen[position:])} not saved"
                    break
                saved.append(folder)
        finally:
            TeacherForcedKL.measuring = True
        print()
        if saved:
            say(
                "Non-interactive run: saved into "
                f"{', '.join(escape(str(folder)) for folder in saved)}."
            )
        if failed:
            say(f"[red]--save-to: {failed}.[/]")
        return 1 if failed or off_front or not saved else 0

    def save_trial(
        self, study: Study, trial: int, resumed_table: dict[str, Any] | None
    ) -> Path | None:
        """
        Saves one trial with one heretic run, through a temporary folder that
        becomes the target once the model loads; returns where it went, or None
        (with a line saying why) when it was not saved.
        """
        from .saving import AtomicSave

        assert self.save_plan is not None
        plan = self.save_plan
        attempt = AtomicSave(plan.folder(trial), plan.export_strategy)
        control = {
            "checkpoint_action": "continue",
            "trial_index": study.index_of(trial),
            "model_action": "save",
            "save_directory": str(attempt.begin()),
            "export_strategy": plan.export_strategy,
        }
        what = "the merged model" if plan.export_strategy == "merge" else "the adapter"
        say(
            f"Non-interactive run: saving trial {trial} ({what}) into "
            f"{escape(str(plan.folder(trial)))}."
        )
        try:
            run_heretic(self.arguments, self.settings_class(control, resumed_table))
        except BaseException:
            attempt.abandon()
            raise
        outcome = attempt.complete()
        if outcome.folder is None:
            problem = escape(str(outcome.problem))
            say(f"[red]--save-to: trial {trial} not saved: {problem}.[/]")
        return outcome.folder


def print_front(study: Study) -> None:
    """Prints the Pareto front under heretic's own objective names."""
    print()
    names = " against ".join(study.objective_names) or "the objectives"
    say(f"[bold]Pareto front[/] ({escape(names)}):")
    for trial in study.front:
        # The titles are heretic's markup ("[Trial   3]" is no markup tag).
        say(f"* {trial.title}")
    print()
