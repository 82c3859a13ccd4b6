"""Exceptions that a gantk command reports as one line, and the exit statuses."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "Parser",
           "RunError", "UsageError", "one_line"]

EXIT_OK = 0
#: A failure during a run (divergence, an output that could not be written half-way).
EXIT_FAILURE = 1
#: A bad argument or unusable input; nothing was written or modified.
EXIT_USAGE = 2
#: Interrupted by Ctrl-C (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command-line argument or unusable input: one line on stderr, exit status 2."""


class RunError(Exception):
    """A failure in the middle of a run (e.g. a write failed): one line, exit status 1."""


def one_line(message: object) -> str:
    """The first non-empty line of ``str(message)`` (error texts of libraries can be long)."""
    for line in str(message).splitlines():
        if line.strip():
            return line.strip()
    return type(message).__name__ if isinstance(message, BaseException) else ""


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors raise :class:`UsageError` (one line, exit 2).

    Every gantk command (``gantk.run``, ``gantk.figures``, ``gantk.models.train`` and
    ``gantk.models.evaluate``) parses with it, so a bad flag is reported the same way.
    """

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` with the first line of argparse's message."""
        raise UsageError(one_line(message))
