"""When a periodic intervention acts: every ``k`` optimizer steps, or at each task end."""
from __future__ import annotations

from typing import Optional

__all__ = ["Trigger", "TriggeredHooks", "TRIGGER_POINTS"]

#: Valid values of ``at``.
TRIGGER_POINTS = ("task_end",)


class Trigger:
    """``every=k``: after every ``k``-th optimizer step (``step % k == 0``);
    ``at="task_end"``: in ``on_task_end``. Exactly one of the two; when both are None the
    method's default (``default_every`` or ``default_at``) applies."""

    def __init__(self, every: Optional[int], at: Optional[str], *, default_every: Optional[int] = None, default_at: Optional[str] = None) -> None:
        if every is not None and at is not None:
            raise ValueError(f"give either every= (steps) or at= (one of {TRIGGER_POINTS}), not both (got every={every!r}, at={at!r})")
        if every is None and at is None:
            every, at = default_every, default_at
        if every is not None:
            if not isinstance(every, int) or isinstance(every, bool) or every < 1:
                raise ValueError(f"every must be a positive int (optimizer steps), got {every!r}")
        elif at not in TRIGGER_POINTS:
            raise ValueError(f"at must be one of {TRIGGER_POINTS}, got {at!r}")
        self.every = every
        self.at = at if every is None else None

    def after_step(self, step: int) -> bool:
        """Whether to act after optimizer step ``step``."""
        return self.every is not None and step % self.every == 0

    @property
    def task_end(self) -> bool:
        """Whether to act at every task end."""
        return self.at == "task_end"

    def __repr__(self) -> str:
        return f"every={self.every}" if self.every is not None else f"at={self.at!r}"


class TriggeredHooks:
    """Mixin for interventions that act through a :class:`Trigger` (``self.trigger``)
    by calling ``self.apply()``: ``after_step`` and ``on_task_end`` clear
    ``last_event``, then apply when the trigger fires. List it before the
    :class:`~normrl.plasticity.Intervention` base so its hooks are the ones used."""

    def after_step(self, step: int) -> None:
        self.last_event = {}
        if self.trigger.after_step(step):
            self.apply()

    def on_task_end(self, task_id: int) -> None:
        self.last_event = {}
        if self.trigger.task_end:
            self.apply()
