"""Exceptions that the CLI reports as one line instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix: bad arguments, a missing or corrupt file."""


class CheckpointError(UserError):
    """A checkpoint that is corrupt or was written by an incompatible run."""


class EvaluationInterrupted(Exception):
    """An evaluation stopped early because a stop was requested (e.g. SIGTERM during a
    continual run's per-task evaluation); its partial result is discarded."""


class RunFailed(Exception):
    """A run that started and could not go on (the CLI prints one line, exit status 1)."""


class TrainingDiverged(RunFailed):
    """Training produced a non-finite loss, gradient norm, parameter or norm statistic.

    ``facts`` holds what was found: ``env_step`` and ``update`` (1-based) of the first
    non-finite value, ``cause`` (``"loss or gradient norm"`` / ``"parameters"``),
    ``parameter`` (the first non-finite parameter or buffer, or None), and, when a run
    directory is involved, ``last_checkpoint`` (the newest checkpoint kept, or None)."""

    def __init__(self, message: str, facts: dict | None = None):
        super().__init__(message)
        self.facts = dict(facts or {})
