"""Task-boundary hooks: the one walker that calls ``on_task_start`` / ``on_task_end``.

Anything that cares about task boundaries implements ``on_task_start(task_id)`` and/or
``on_task_end(task_id)``: normalization layers (AdaB²N's per-task weights, Continual
Normalization, LR schedules that restart), plasticity interventions (resets at task
end, injection at task start). Continual RL (:class:`~normrl.continual.TaskScheduler`),
the supervised online learner (:mod:`normrl.continual.online`) and the SB3 callbacks
all call them through :func:`call_task_hooks`.
"""
from __future__ import annotations

from typing import Any, Iterable

from torch import nn


def hook_targets(roots: Iterable[Any]) -> list[Any]:
    """Every object a task hook may be called on, each once, in walk order: every
    submodule of each ``nn.Module`` root (``nn.Module.modules()``), and every other
    root object itself (e.g. an intervention or an LR schedule). An object reachable
    from several roots appears once."""
    seen: set[int] = set()
    out = []
    for root in roots:
        for obj in (root.modules() if isinstance(root, nn.Module) else (root,)):
            if id(obj) not in seen:
                seen.add(id(obj))
                out.append(obj)
    return out


def call_task_hooks(roots: Iterable[Any], hook: str, task_id: int) -> int:
    """Call ``obj.<hook>(task_id)`` (``hook`` is ``"on_task_start"`` or
    ``"on_task_end"``) on every target of :func:`hook_targets` that defines it; return
    the number of calls."""
    if hook not in ("on_task_start", "on_task_end"):
        raise ValueError(f"hook must be 'on_task_start' or 'on_task_end', got {hook!r}")
    calls = 0
    for obj in hook_targets(roots):
        fn = getattr(obj, hook, None)
        if callable(fn):
            fn(task_id)
            calls += 1
    return calls


def notify_task_switch(roots: Iterable[Any], old_task: int | None, new_task: int | None) -> int:
    """A task switch: ``on_task_end(old_task)`` on every target (skipped when
    ``old_task`` is ``None``), then ``on_task_start(new_task)`` (skipped when
    ``new_task`` is ``None``). Returns the number of calls.

    SB3 integration: ``notify_task_switch([model.policy], old, new)``.
    """
    roots = list(roots)  # walked by each call, so modules an end hook adds get the start hook
    calls = 0
    if old_task is not None:
        calls += call_task_hooks(roots, "on_task_end", old_task)
    if new_task is not None:
        calls += call_task_hooks(roots, "on_task_start", new_task)
    return calls
