"""SIGINT/SIGTERM handling of long runs: stop at the next consistent point, checkpoint,
and exit with the shell's status for the signal (130 / 143)."""
from __future__ import annotations

import signal
import threading
from typing import Callable

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status(signum: int) -> int:
    """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


class StopSignals:
    """Context manager that records SIGINT/SIGTERM instead of dying on them.

    Inside the block, a signal appends its number to :attr:`received` and calls
    ``on_signal(signum)`` (e.g. ``scheduler.request_stop``); the training loop checks
    :attr:`requested` at its consistent points, saves and returns. The previous
    handlers are restored on exit. Outside the main thread (signal handlers cannot be
    installed there, e.g. in a Ray worker thread) it installs nothing and
    :attr:`requested` stays False.
    """

    def __init__(self, on_signal: Callable[[int], object] | None = None):
        self.on_signal = on_signal
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return bool(self.received)

    @property
    def first(self) -> int | None:
        """The first signal received, or None."""
        return self.received[0] if self.received else None

    def _handle(self, signum, frame) -> None:
        self.received.append(signum)
        if self.on_signal is not None:
            self.on_signal(signum)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in _SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
