"""Exceptions that the CLI reports as one line instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix: bad arguments, a missing or corrupt file."""


class CheckpointError(UserError):
    """A checkpoint that is corrupt or was written by an incompatible run."""
