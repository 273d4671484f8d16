# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""The console that the heretic adapters and the commands print to, styled like heretic's."""

import logging
from typing import Any

from rich.console import Console
from rich.markup import escape


def unwrap_when_not_terminal(target: Any) -> None:
    """
    Off a terminal (a log file, a pipe, a scheduler), Rich wraps at 80 columns and
    splits log lines, which breaks grep and log readers: a Rich console that
    does not write to a terminal then prints each message as one line.
    """
    if isinstance(target, Console) and not target.is_terminal:
        target.soft_wrap = True


console = Console(highlight=False)
unwrap_when_not_terminal(console)

#: Prints Rich markup, exactly like `heretic.utils.print`.
print = console.print


def say(message: str) -> None:
    """Prints one line of Rich markup, never wrapped, so that logs keep it whole."""
    console.print(message, soft_wrap=True)


def print_item(message: str) -> None:
    """Prints a plain-text message of the engine as a list item, markup escaped."""
    console.print(f"* {escape(message)}")


#: Warnings of heretic's dependencies that report no error, by logger and start
#: of message. On CPUs with AVX512-BF16, bitsandbytes tries at import to fetch an
#: optimized CPU kernel for 4-bit matrix products from the Hugging Face Hub and,
#: when that fails (always, offline), uses its own implementation.
HARMLESS_WARNINGS = (
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward"),
)


class DemoteWarning(logging.Filter):
    """Turns one logger's warnings that start with `prefix` into debug messages."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith(
            self.prefix
        ):
            record.levelno = logging.DEBUG
            record.levelname = logging.getLevelName(logging.DEBUG)
        return True


def quiet_harmless_warnings() -> None:
    """
    Demotes the `HARMLESS_WARNINGS` to debug messages, before their packages are
    imported: they no longer start every command, and a debug log still has them.
    """
    for name, prefix in HARMLESS_WARNINGS:
        logger = logging.getLogger(name)
        if not any(
            isinstance(existing, DemoteWarning) and existing.prefix == prefix
            for existing in logger.filters
        ):
            logger.addFilter(DemoteWarning(prefix))
