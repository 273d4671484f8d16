# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Answers to heretic-llm 1.4.0's terminal menus in a non-interactive run.

1.4.0 has no settings for choosing and saving a trial; it asks, before the
study, whether to continue a study found in its checkpoint and, after the
study, which trial to use and what to do with it. Without a terminal these
questions would end the run with an `EOFError`. In a non-interactive run the
answers come from here instead, and every model is saved by heretic's own
saving code, driven through its own menus:

- a study found in the checkpoint continues, with the settings saved with it;
- the Pareto front is printed;
- with a `SavePlan` (`heretic-kl --save-to DIR [--save-trials N,...]`), each
  chosen trial is selected in heretic's trial menu and saved with "Save the
  model to a local folder", merged unless heretic's `export_strategy` setting
  says otherwise. heretic saves into a temporary folder beside `DIR/trial-N`
  (`adapters/saving.py`); the save counts only when heretic printed "Model
  saved to" (its save returned normally) and the folder loads, and is then
  renamed into place; otherwise the partial folder is removed;
- every other question gets the answer that leaves it ("Exit program",
  "Return to the trial selection menu", no additional trials).

1.4.0 asks through its `prompt_select`, `prompt_text` and `prompt_path`
functions, which `launch.py` replaces by these answers. 1.4.0 is a finished
release, so the English text of its questions, which this module matches,
cannot change under it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from ...console import print, say
from ..saving import ADAPTER, MERGE, AtomicSave, SavePlan, numbers

#: The question heretic asks when its checkpoint holds a study of the model.
CHECKPOINT_QUESTION = "How would you like to proceed?"

#: The question of heretic's trial menu after the study.
TRIAL_QUESTION = "Which trial do you want to use?"

#: The question of heretic's menu of what to do with the chosen trial.
ACTION_QUESTION = "What do you want to do with the decensored model?"

#: The question for the folder to save a model to.
FOLDER_QUESTION = "Path to the folder:"

#: The question for merging the LoRA adapter or exporting it alone.
EXPORT_QUESTION = "How do you want to export the model?"

#: The question after "Run additional trials".
ADDITIONAL_TRIALS_QUESTION = "How many additional trials do you want to run?"

#: heretic's explanation of its trial menu, which a non-interactive run replaces.
TRIAL_MENU_EXPLANATION = (
    "After selecting a trial, you will be able to save the model, upload it to "
    "Hugging Face, chat with it to test how well it works, or run standard "
    "benchmarks on it. You can return to this menu later to select a different trial. "
)

#: What 1.4.0 prints once its save has returned normally, before the folder.
SAVED_MESSAGE = "Model saved to "

#: What 1.4.0 prints as it begins to save, by export strategy.
SAVING_MESSAGES = {"Saving LoRA adapter": ADAPTER, "Saving merged model": MERGE}

#: How 1.4.0 begins the message of an error that it caught during an action.
ERROR_MESSAGE = "[red]Error"


def choice_value(choice: Any) -> Any:
    """The value of a menu choice: a questionary `Choice`'s value, or a plain string."""
    return getattr(choice, "value", choice)


def choice_title(choice: Any) -> str:
    """The title of a menu choice: a questionary `Choice`'s title, or a plain string."""
    if isinstance(choice, str):
        return choice
    title = getattr(choice, "title", None)
    return title if isinstance(title, str) else str(choice)


def trial_number(value: Any) -> int | None:
    """The number heretic shows for a trial menu entry ("[Trial N]"), or None for other entries."""
    user_attributes = getattr(value, "user_attrs", None)
    if isinstance(user_attributes, dict) and "index" in user_attributes:
        return int(user_attributes["index"])
    return None


def find_choice(choices: Sequence[Any], title_start: str) -> Any:
    """The value of the first choice whose title starts with `title_start`, or ""."""
    for choice in choices:
        if choice_title(choice).startswith(title_start):
            return choice_value(choice)
    return ""


@dataclass
class NonInteractiveMenus:
    """
    Answers heretic's menus without a terminal, saving the trials of `save_plan`
    through heretic's own "Save the model to a local folder".
    """

    save_plan: SavePlan | None = None

    #: The trials still to save, decided at the first trial menu.
    pending: list[int] | None = None

    #: The trial being saved, and whether its save action was chosen already.
    current: int | None = None
    save_chosen: bool = False

    #: The save in progress (heretic is writing into its temporary folder), if any.
    saving: AtomicSave | None = None

    #: Whether heretic showed an error while the save in progress was written.
    error_shown: bool = False

    #: The trials saved, with the folder each went to.
    saved: dict[int, Path] = field(default_factory=dict)

    #: The trials not saved, with the reason in words.
    failed: dict[int, str] = field(default_factory=dict)

    #: Requested trials that are not on the Pareto front.
    not_on_front: list[int] = field(default_factory=list)

    #: Whether heretic's trial menu was reached.
    reached_trial_menu: bool = False

    def select(self, message: str, choices: Sequence[Any] = (), **_: Any) -> Any:
        """Answers a selection menu (heretic 1.4.0's `prompt_select`)."""
        if message.startswith(CHECKPOINT_QUESTION):
            return self.answer_checkpoint(choices)
        if message.startswith(TRIAL_QUESTION):
            return self.answer_trial_menu(choices)
        if message.startswith(ACTION_QUESTION):
            # heretic is back at its action menu: a save in progress did not
            # return normally (heretic caught an error).
            self.end_save(returned_normally=False)
            if self.current is not None and not self.save_chosen:
                self.save_chosen = True
                return find_choice(choices, "Save the model")
            return ""
        if message.startswith(EXPORT_QUESTION):
            return self.answer_export(choices)
        say(
            f"[yellow]Non-interactive run: heretic asks {escape(repr(message))}; "
            "leaving it unanswered.[/]"
        )
        return ""

    def text(self, message: str, *_: Any, **__: Any) -> str:
        """Answers a text question (heretic 1.4.0's `prompt_text` and `prompt_path`)."""
        if message.startswith(FOLDER_QUESTION) and self.current is not None:
            assert self.save_plan is not None
            self.saving = AtomicSave(
                self.save_plan.folder(self.current), self.save_plan.export_strategy
            )
            self.error_shown = False
            return str(self.saving.begin())
        if not message.startswith(ADDITIONAL_TRIALS_QUESTION):
            say(
                f"[yellow]Non-interactive run: heretic asks {escape(repr(message))}; "
                "leaving it unanswered.[/]"
            )
        return ""

    def answer_export(self, choices: Sequence[Any]) -> Any:
        """Chooses the export strategy of the save plan (heretic's `ExportStrategy` values)."""
        strategy = "merge" if self.save_plan is None else self.save_plan.export_strategy
        for choice in choices:
            value = choice_value(choice)
            if getattr(value, "value", value) == strategy:
                break
        else:
            strategy, value = "merge", find_choice(choices, "Merge")
        if strategy == "merge":
            say(
                "Non-interactive run: saving the merged model (--export-strategy "
                "adapter saves the LoRA adapter only)."
            )
        else:
            say(
                "Non-interactive run: saving the LoRA adapter only (--export-strategy)."
            )
        return value

    def answer_checkpoint(self, choices: Sequence[Any]) -> Any:
        """Continues the study found in the checkpoint, where heretic offers it."""
        if "continue" in [choice_value(choice) for choice in choices]:
            say(
                "Non-interactive run: continuing the study found in the checkpoint, "
                "with the settings saved with it (to start afresh, delete the "
                "checkpoint file in study_checkpoint_dir)."
            )
            return "continue"
        return ""

    def answer_trial_menu(self, choices: Sequence[Any]) -> Any:
        """Prints the Pareto front once, then selects each trial to save in turn."""
        front = {
            number: choice
            for choice in choices
            if (number := trial_number(choice_value(choice))) is not None
        }
        if not self.reached_trial_menu:
            self.reached_trial_menu = True
            print_front(choices)
            if self.save_plan is not None:
                self.pending = self.trials_to_save(list(front))
        self.current = None
        self.save_chosen = False
        if self.pending:
            self.current = self.pending.pop(0)
            return choice_value(front[self.current])
        if self.save_plan is None:
            say(
                "Non-interactive run: exiting after the study. To save models, run "
                "the same command again with --save-to DIR: the study continues "
                "from its checkpoint and goes straight to saving."
            )
        return ""

    def trials_to_save(self, front: list[int]) -> list[int]:
        """The trials of the save plan that are on the Pareto front, with a line for the others."""
        assert self.save_plan is not None
        if self.save_plan.trials is None:
            return front
        self.not_on_front = [
            trial for trial in self.save_plan.trials if trial not in front
        ]
        if self.not_on_front:
            say(
                f"[red]--save-trials: trial {numbers(self.not_on_front)} "
                f"{'is' if len(self.not_on_front) == 1 else 'are'} not on the Pareto "
                f"front (trials {numbers(front)}), so not saved.[/]"
            )
        return [trial for trial in self.save_plan.trials if trial in front]

    def explain_trial_menu(self, message: str) -> str:
        """heretic's explanation of the trial menu, with what a non-interactive run does instead."""
        if self.save_plan is None:
            replacement = "Non-interactive run: no model is saved (see --save-to in heretic-kl --help). "
        else:
            replacement = (
                f"Non-interactive run: saving {self.save_plan.describe()} into "
                f"{escape(str(self.save_plan.directory))}, one folder per trial. "
            )
        return message.replace(TRIAL_MENU_EXPLANATION, replacement)

    def filtered_print(self, host_print: Callable[..., None]) -> Callable[..., None]:
        """
        Wraps heretic's `print` so that the trial menu's explanation fits a
        non-interactive run, and a save in progress is followed (`observe_print`).
        """

        def print_for_non_interactive_run(*objects: Any, **options: Any) -> None:
            if objects and isinstance(objects[0], str):
                first = self.observe_print(objects[0])
                if first is None:
                    return
                objects = (first, *objects[1:])
            host_print(
                *(
                    self.explain_trial_menu(item) if isinstance(item, str) else item
                    for item in objects
                ),
                **options,
            )

        return print_for_non_interactive_run

    def observe_print(self, message: str) -> str | None:
        """
        Follows a save in progress through what heretic prints: the export
        strategy, an error it caught, or "Model saved to", which it prints only
        once its save has returned normally. Returns what to print instead of
        `message` (None: nothing).
        """
        if self.saving is None or self.saving.temporary is None:
            return message
        for start, strategy in SAVING_MESSAGES.items():
            if message.startswith(start):
                self.saving.export_strategy = strategy
        if message.startswith(ERROR_MESSAGE):
            self.error_shown = True
        if message.startswith(SAVED_MESSAGE) and str(self.saving.temporary) in message:
            self.end_save(returned_normally=True)
            return None
        return message

    def end_save(self, returned_normally: bool, reason: str | None = None) -> None:
        """
        Ends the save in progress, if any: checked and renamed into place when
        heretic's save returned normally, otherwise removed. `reason` says why it
        did not return (by default, heretic's error, where it showed one).
        """
        saving, self.saving = self.saving, None
        if saving is None or saving.temporary is None or self.current is None:
            return
        trial = self.current
        if not returned_normally:
            if reason is None:
                reason = (
                    "heretic's save failed (its error is shown above)"
                    if self.error_shown
                    else "heretic's save did not finish"
                )
            self.failed[trial] = f"{reason}; {saving.abandon()}"
            say(
                f"[red]--save-to: trial {trial} not saved: {escape(self.failed[trial])}.[/]"
            )
            return
        try:
            outcome = saving.complete()
        except BaseException:
            # Interrupted while the folder was checked: it is removed already.
            self.failed[trial] = "the save was interrupted"
            raise
        if outcome.folder is None:
            self.failed[trial] = f"the saved folder does not load ({outcome.problem})"
            say(
                f"[red]--save-to: trial {trial} not saved: {escape(self.failed[trial])}.[/]"
            )
            return
        self.saved[trial] = outcome.folder
        if outcome.renamed:
            say(
                f"[yellow]{escape(str(saving.target))} was taken during the save, so "
                f"trial {trial} went to {escape(str(outcome.folder))} instead.[/]"
            )
        say(f"Model saved to [bold]{escape(str(outcome.folder))}[/].")

    def abandon_unfinished(self) -> None:
        """Removes the folder of a save that heretic never finished (interrupted, say)."""
        self.end_save(returned_normally=False, reason="the save was interrupted")

    def finish(self) -> int:
        """
        Reports what was saved, once heretic has returned, and returns the exit
        status: 1 when a trial of the save plan was not saved, otherwise 0.
        """
        self.abandon_unfinished()
        if self.save_plan is None:
            return 0
        if not self.reached_trial_menu:
            say(
                "[red]--save-to: no model saved; the run ended before heretic's trial "
                "menu.[/]"
            )
            return 1
        print()
        if self.saved:
            say(
                f"Non-interactive run: saved trial {numbers(list(self.saved))} into "
                f"{', '.join(escape(str(folder)) for folder in self.saved.values())}."
            )
        if self.pending:
            say(
                f"[red]--save-to: trial {numbers(self.pending)} not saved: the run "
                "ended before "
                f"{'its save' if len(self.pending) == 1 else 'their saves'}.[/]"
            )
        failed = self.failed or self.pending or self.not_on_front
        return 1 if failed or not self.saved else 0


def print_front(choices: Sequence[Any]) -> None:
    """Prints the trials of heretic's trial menu: the Pareto front."""
    print()
    print("[bold]Pareto front[/] (refusals against KL divergence):")
    for choice in choices:
        if trial_number(choice_value(choice)) is not None:
            # The titles are heretic's markup ("[Trial   3]" is no markup tag).
            say(f"* {choice_title(choice)}")
    print()
