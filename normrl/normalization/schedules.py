"""Learning-rate schedules with optional restart at every task switch.

Under NaP (Lyle et al. 2024, arXiv 2407.01800) the norms of the scale-invariant
weights are fixed, so the learning rate *is* the effective learning rate and its
schedule has to be chosen explicitly. The paper's sequential-ALE setting uses a cosine
schedule with warmup, restarted at the start of every game; :func:`nap_sequential_schedule`
builds that one (warmup :data:`NAP_SEQUENTIAL_ALE_WARMUP_STEPS` = 1,000 updates).

Closed forms, with ``t`` the schedule's clock (updates since the start or the last
restart), ``W = warmup_steps``, ``T = total_steps``, ``b = base_lr`` and
``f = final_lr_fraction · base_lr``:

* warmup, ``t < W``: ``lr = b · t / W`` (starts at 0, reaches ``b`` at ``t = W``);
* after warmup, with progress ``p = min(1, (t − W) / (T − W))``:

  - ``constant``: ``b``;
  - ``linear``: ``b + (f − b) · p``;
  - ``cosine``: ``f + (b − f) · (1 + cos(π p)) / 2`` (so the midpoint is ``(b + f)/2``);
* after ``T`` the value stays at its end (``f`` for linear/cosine).

Usage in a training loop::

    schedule = make_lr_schedule("cosine", 6.25e-5, total_steps=steps_per_task,
                                warmup_steps=1000, restart_on_task_switch=True)
    for update in ...:
        schedule.apply(optimizer)   # sets every param group's lr to schedule(clock)
        loss.backward(); optimizer.step()
        schedule.step()             # advance the clock
    # at a task switch:
    schedule.on_task_start(task_id)  # restarts the clock if restart_on_task_switch
"""
from __future__ import annotations

import math
from typing import Optional

from torch.optim import Optimizer

__all__ = ["LRSchedule", "make_lr_schedule", "nap_sequential_schedule", "SCHEDULES", "NAP_SEQUENTIAL_ALE_WARMUP_STEPS"]

SCHEDULES = ("constant", "linear", "cosine")

#: Warmup length of the paper's sequential-ALE schedule (cosine, restarted per game).
NAP_SEQUENTIAL_ALE_WARMUP_STEPS = 1000


def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class LRSchedule:
    """A learning-rate schedule with its own clock.

    Args:
        name: one of ``"constant"``, ``"linear"``, ``"cosine"``.
        base_lr: peak learning rate (> 0).
        total_steps: length of one cycle in updates (>= 1, and > ``warmup_steps`` for
            linear/cosine); with ``restart_on_task_switch`` this is the per-task length.
        warmup_steps: linear warmup from 0 [0].
        final_lr_fraction: end value as a fraction of ``base_lr`` for linear/cosine [0.0].
        restart_on_task_switch: :meth:`on_task_start` restarts the clock [False].

    ``schedule(t)`` is the pure closed form (module docstring); :meth:`step`,
    :meth:`apply`, :meth:`restart` act on the clock ``schedule.t``.
    """

    def __init__(
        self,
        name: str,
        base_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        final_lr_fraction: float = 0.0,
        restart_on_task_switch: bool = False,
    ) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown LR schedule {name!r}; valid: {', '.join(SCHEDULES)}")
        if not isinstance(base_lr, (int, float)) or isinstance(base_lr, bool) or not base_lr > 0 or not math.isfinite(base_lr):
            raise ValueError(f"base_lr must be a positive number, got {base_lr!r}")
        _check_int("total_steps", total_steps, 1)
        _check_int("warmup_steps", warmup_steps, 0)
        if name != "constant" and warmup_steps >= total_steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) must be smaller than total_steps ({total_steps}) for {name!r}")
        if not 0.0 <= final_lr_fraction <= 1.0:
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {final_lr_fraction!r}")
        self.name = name
        self.base_lr = float(base_lr)
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_lr_fraction = float(final_lr_fraction)
        self.restart_on_task_switch = bool(restart_on_task_switch)
        self.t = 0
        self.num_restarts = 0

    def __call__(self, step: int) -> float:
        """Learning rate at clock value ``step`` (>= 0)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        b = self.base_lr
        if step < self.warmup_steps:
            return b * step / self.warmup_steps
        if self.name == "constant":
            return b
        f = self.final_lr_fraction * b
        p = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        if self.name == "linear":
            return b + (f - b) * p
        return f + (b - f) * 0.5 * (1.0 + math.cos(math.pi * p))

    @property
    def lr(self) -> float:
        """Learning rate at the current clock."""
        return self(self.t)

    def step(self) -> float:
        """Advance the clock by one update; return the new learning rate."""
        self.t += 1
        return self.lr

    def apply(self, optimizer: Optimizer) -> float:
        """Set every param group's ``lr`` of ``optimizer`` to the current value; return it."""
        lr = self.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def restart(self) -> None:
        """Restart the clock (warmup and decay start over)."""
        self.t = 0
        self.num_restarts += 1

    def on_task_start(self, task_id: int) -> None:
        """Task-boundary hook: restart the clock if ``restart_on_task_switch``.

        The first task's start is not a switch: a clock still at 0 is left alone.
        """
        if self.restart_on_task_switch and self.t > 0:
            self.restart()

    def on_task_end(self, task_id: int) -> None:
        """Task-boundary hook (nothing to do at a task's end)."""

    def state_dict(self) -> dict:
        """Configuration and clock."""
        return {
            "name": self.name,
            "base_lr": self.base_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_lr_fraction": self.final_lr_fraction,
            "restart_on_task_switch": self.restart_on_task_switch,
            "t": self.t,
            "num_restarts": self.num_restarts,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the clock; the configuration must match this schedule's."""
        for key in ("name", "base_lr", "total_steps", "warmup_steps", "final_lr_fraction", "restart_on_task_switch"):
            if state[key] != getattr(self, key):
                raise ValueError(f"LR schedule mismatch on {key}: saved {state[key]!r}, current {getattr(self, key)!r}")
        self.t = int(state["t"])
        self.num_restarts = int(state["num_restarts"])

    def __repr__(self) -> str:
        return (
            f"LRSchedule({self.name!r}, base_lr={self.base_lr}, total_steps={self.total_steps}, "
            f"warmup_steps={self.warmup_steps}, final_lr_fraction={self.final_lr_fraction}, "
            f"restart_on_task_switch={self.restart_on_task_switch}, t={self.t})"
        )


def make_lr_schedule(
    name: str,
    base_lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    final_lr_fraction: float = 0.0,
    restart_on_task_switch: bool = False,
) -> LRSchedule:
    """Build an :class:`LRSchedule` (see the module docstring for the closed forms).

    ``name`` is one of ``"constant"``, ``"linear"``, ``"cosine"``; defaults:
    ``warmup_steps=0``, ``final_lr_fraction=0.0``, ``restart_on_task_switch=False``.
    """
    return LRSchedule(name, base_lr, total_steps, warmup_steps, final_lr_fraction, restart_on_task_switch)


def nap_sequential_schedule(base_lr: float, steps_per_task: int, warmup_steps: Optional[int] = None, final_lr_fraction: float = 0.0) -> LRSchedule:
    """The paper's sequential-ALE schedule: cosine with warmup, restarted per task.

    ``warmup_steps`` defaults to :data:`NAP_SEQUENTIAL_ALE_WARMUP_STEPS` (1,000 updates);
    ``final_lr_fraction`` to 0.0.
    """
    warmup = NAP_SEQUENTIAL_ALE_WARMUP_STEPS if warmup_steps is None else warmup_steps
    return LRSchedule("cosine", base_lr, steps_per_task, warmup, final_lr_fraction, restart_on_task_switch=True)
