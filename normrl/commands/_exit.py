"""How ``normrl`` commands and the scripts fail: one line on stderr, a fixed exit status.

Exit statuses (the same for every command and script):

* 0: done;
* 2: the command line cannot work — an unknown flag or name, a malformed, negative or
  zero value, a missing input file, a ``--logdir`` that is a file or cannot be created
  or written, a checkpoint that is refused or does not match (argparse's own errors
  included): :class:`~normrl.utils.errors.UserError`, ``ValueError``,
  ``FileNotFoundError``;
* 1: the run started and failed — training diverged
  (:class:`~normrl.utils.errors.TrainingDiverged`), the disk filled up or another
  I/O error (``OSError``): :class:`~normrl.utils.errors.RunFailed`, ``OSError``;
* 130 / 143: stopped by SIGINT / SIGTERM (after saving a checkpoint where the command
  checkpoints).

Each error is one line, ``<prog>: error: <message>``, never a traceback; anything else
escaping a command is a bug in normrl and keeps its traceback for the report.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from normrl.utils.errors import RunFailed, UserError

USAGE = 2
RUNTIME = 1


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block) pointing at
    ``--help``, with exit status :data:`USAGE`."""

    def error(self, message: str):
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(exc: BaseException) -> str:
    """``str(exc)`` with its whitespace (newlines included) collapsed."""
    return " ".join(str(exc).split()) or type(exc).__name__


def exit_status_of(exc: BaseException) -> int | None:
    """:data:`USAGE` or :data:`RUNTIME` for the errors a command reports in one line,
    None for anything else (a bug: it keeps its traceback)."""
    if isinstance(exc, (UserError, ValueError, FileNotFoundError)):
        return USAGE
    if isinstance(exc, (RunFailed, OSError)):
        return RUNTIME
    return None


def run_command(prog: str, func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` as a command: return its result, or report an error as one line
    on stderr and raise ``SystemExit`` with its status (as argparse does for usage
    errors); SystemExit(130) on KeyboardInterrupt."""
    try:
        return func(*args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:
        status = exit_status_of(exc)
        if status is None:
            raise
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(status) from None
