"""``StepOffsetWriter``: a TensorBoard writer view that shifts every step by a fixed
offset, so that agents that each count their own steps from 0 (the fresh agent of every
visit in :func:`normrl.runs.train_stream`'s ``fresh_agent`` mode) log along one x-axis."""
from __future__ import annotations

from typing import Any


class StepOffsetWriter:
    """Forward ``add_scalar``, ``flush`` and ``close`` to ``writer`` with ``global_step +
    offset`` (the only writer methods normrl's agents and scheduler call).

    ``close`` only flushes: the wrapped writer is shared by the agents of one run and is
    closed by its owner.
    """

    def __init__(self, writer: Any, offset: int):
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        self.writer = writer
        self.offset = offset

    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None, *args, **kwargs) -> None:
        step = None if global_step is None else int(global_step) + self.offset
        self.writer.add_scalar(tag, scalar_value, step, *args, **kwargs)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.flush()
