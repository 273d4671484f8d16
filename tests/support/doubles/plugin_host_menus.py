# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
A test double of heretic master's `heretic.main` with its menus, for hosts
without the plugin API.

Like `plugin_host_main`, it parses the settings as heretic master does and
reports them (the `HOST` line), but then goes through the questions that
heretic master asks around a study, in the same way: each through
`ask_if_unset(value, questionary.select/text/path(...))`, which uses a value
given as a setting (`--checkpoint-action`, `--trial-index`, `--model-action`,
`--save-directory`, `--export-strategy`) without asking, with the same
questions and choice values. A file `checkpoint.json` in the working folder
stands for a study in heretic's checkpoint; the "study" has a Pareto front of
trials 2 and 5; "saving" a trial writes `config.json` into the folder chosen.
"""

import builtins
import json
import sys
from pathlib import Path
from typing import Any, TypeVar

import questionary
from pydantic import Field
from questionary import Choice

from . import plugin_host_main

#: heretic master's `print` in `heretic.main` (Rich there; plain here).
print = builtins.print

#: What `ask_if_unset` passes through.
Value = TypeVar("Value")

#: The file that stands for a study in heretic's checkpoint.
CHECKPOINT_FILE = Path("checkpoint.json")

#: heretic's explanation of its trial menu, as it prints it.
TRIAL_MENU_TEXT = (
    "The following trials resulted in Pareto optimal combinations of the optimization "
    "objectives. After selecting a trial, you will be able to save the model, upload it "
    "to Hugging Face, chat with it to test how well it works, or run standard benchmarks "
    "on it. You can return to this menu later to select a different trial. "
    "[yellow]Note that KL divergence values above 0.5 usually indicate significant "
    "damage to the original model's capabilities.[/]"
)


class Settings(plugin_host_main.Settings):
    """heretic master's settings for answering its menus from the command line."""

    checkpoint_action: str | None = Field(
        default=None, description="Checkpoint action."
    )
    trial_index: int | None = Field(default=None, description="Pareto front index.")
    model_action: str | None = Field(default=None, description="Model action.")
    save_directory: str | None = Field(default=None, description="Save directory.")
    export_strategy: str | None = Field(default=None, description="Export strategy.")
    n_additional_trials: int | None = Field(default=None, description="More trials.")


class Trial:
    """A finished trial as heretic's trial menu holds it (an Optuna `FrozenTrial`)."""

    def __init__(self, index: int) -> None:
        self.user_attrs = {"index": index}


def ask_if_unset(value: Value | None, question: Any, unsafe: bool = False) -> Any:
    """heretic master's `ask_if_unset`: a value set in the settings wins over asking."""
    if value is not None:
        return value
    return question.unsafe_ask() if unsafe else question.ask()


def main() -> None:
    """Parses the settings, reports them, and answers heretic master's menus like it."""
    arguments = sys.argv
    if (
        len(arguments) > 1
        and "--model" not in arguments
        and not arguments[-1].startswith("-")
    ):
        arguments.insert(-1, "--model")
    settings = Settings()  # type: ignore[call-arg]
    print("HOST " + json.dumps({"model": settings.model}))

    if CHECKPOINT_FILE.exists():
        action = ask_if_unset(
            settings.checkpoint_action,
            questionary.select(
                "How would you like to proceed?",
                choices=[
                    Choice(title="Continue the previous run", value="continue"),
                    Choice(title="Ignore the previous run", value="restart"),
                    Choice(title="Exit program", value=""),
                ],
            ),
        )
        print(f"CHECKPOINT {action!r}")
        if action is None or action == "":
            return
    CHECKPOINT_FILE.write_text("{}")

    trials = [Trial(2), Trial(5)]
    choices = [
        Choice(title=f"[Trial {trial.user_attrs['index']:>3}] KL: 0.01", value=trial)
        for trial in trials
    ]
    choices.append(Choice(title="Run additional trials", value="continue"))
    choices.append(Choice(title="Exit program", value=""))
    print(TRIAL_MENU_TEXT)
    while True:
        trial = ask_if_unset(
            None if settings.trial_index is None else trials[settings.trial_index],
            questionary.select("Which trial do you want to use?", choices=choices),
        )
        if trial is None or trial == "":
            return
        if trial == "continue":
            count = ask_if_unset(
                settings.n_additional_trials,
                questionary.text("How many additional trials do you want to run?"),
            )
            print(f"ADDITIONAL {count!r}")
            continue
        while True:
            action = ask_if_unset(
                settings.model_action,
                questionary.select(
                    "What do you want to do with the decensored model?",
                    choices=[
                        Choice(title="Save the model to a local folder", value="save"),
                        Choice(title="Chat with the model", value="chat"),
                        Choice(title="Return to the trial selection menu", value=""),
                    ],
                ),
            )
            if action is None or action == "":
                break
            if action == "save":
                directory = ask_if_unset(
                    settings.save_directory,
                    questionary.path("Path to the folder:", only_directories=True),
                )
                strategy = ask_if_unset(
                    settings.export_strategy,
                    questionary.select(
                        "How do you want to export the model?",
                        choices=[
                            Choice(title="Merge the abliteration LoRA", value="merge"),
                            Choice(title="Export the LoRA only", value="adapter"),
                        ],
                    ),
                )
                Path(directory).mkdir(parents=True, exist_ok=True)
                (Path(directory) / "config.json").write_text(
                    json.dumps(
                        {"trial": trial.user_attrs["index"], "strategy": strategy}
                    )
                )
                print(f"Model saved to {directory}.")
            if settings.model_action is not None:
                break
