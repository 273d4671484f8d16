# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
Answers to heretic's terminal menus in a non-interactive run.

heretic asks, after the study, which trial to use and what to do with it.
Without a terminal these questions would end the run with an `EOFError`; the
answers below print the Pareto front and exit instead.
"""

from typing import Any, TypeVar

from ..console import print

#: The value that `non_interactive_answer` passes through.
Value = TypeVar("Value")


def non_interactive_select(message: str, choices: list[Any]) -> Any:
    """
    Answers heretic's `prompt_select` menus without a terminal: at the trial menu
    it prints the Pareto front and chooses "Exit program", which every other
    menu gets too.
    """
    if message.startswith("Which trial"):
        print()
        print("[bold]Pareto front[/] (refusals against KL divergence):")
        for choice in choices:
            value = getattr(choice, "value", None)
            if value not in ("continue", "", None):
                print(f"* {getattr(choice, 'title', choice)}")
        print()
        print("Non-interactive run: exiting after the study.")
        return ""
    print(
        f"[yellow]Non-interactive run: heretic asks {message!r}; answering "
        '"Exit program". Run without --non-interactive to answer it.[/]'
    )
    return ""


def non_interactive_answer(value: Value | None, *question: Any, **options: Any) -> Any:
    """
    Answers heretic master's `ask_if_unset(value, question, unsafe=False)` without
    a terminal: a value set on the command line (such as `--trial-index`) is used
    as it is; every other question gets the empty answer, which at the trial menu
    means "Exit program". The question itself is never asked.
    """
    return value if value is not None else ""
