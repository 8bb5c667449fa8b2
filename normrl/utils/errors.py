"""Exceptions that the CLI reports as one line instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix: bad arguments, a missing or corrupt file."""


class CheckpointError(UserError):
    """A checkpoint that is corrupt or was written by an incompatible run."""


class EvaluationInterrupted(Exception):
    """An evaluation stopped early because a stop was requested (e.g. SIGTERM during a
    continual run's per-task evaluation); its partial result is discarded."""
