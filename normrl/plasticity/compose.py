"""Run several plasticity interventions as one, in a fixed and documented order.

Order of one training update with :class:`Compose`:

1. ``loss = loss + compose.penalty()``: the penalties of every intervention, summed
   (L2, L2-init, Parseval);
2. the caller's ``optimizer.step()`` (with NaP, a ``ProjectedOptimizer`` projects
   inside it);
3. ``compose.after_step(step)`` runs the interventions by stage
   (:data:`~normrl.plasticity.base.STAGE_STRUCTURE` → ``STAGE_MERGE`` (LiNeS) →
   ``STAGE_RESET`` (ReDo, continual backprop, layer resets) → ``STAGE_SHRINK_PERTURB``),
   interventions of the same stage in the order they were given;
4. **NaP projection last**: when any of them changed parameters, the optimizer's
   projector (``optimizer.projector.project()``) runs once more, so every projected
   weight is back at its target norm after any intervention.

``on_task_start`` / ``on_task_end`` run the same stages and end with the same
projection. When a structural intervention changed the parameter set (it rebinds the
optimizer and the projector itself), every other intervention's
``on_structure_change()`` is called before the next one runs.

``last_event`` merges the interventions' events, each key prefixed by the
intervention's label (its registry name; ``name#i`` when the same method appears
twice): ``{"redo/reset_units/net.0": 3}``. ``last_penalties`` holds the detached value
of each penalty from the last :meth:`Compose.penalty` call (tensors, no host sync),
for logging.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

import torch
import torch.nn as nn
from torch.optim import Optimizer

from normrl.plasticity.base import Intervention

__all__ = ["Compose"]


class Compose:
    """Several :class:`~normrl.plasticity.Intervention` objects behind the same hooks
    (see the module docstring for the order). An empty Compose is valid and does
    nothing (its penalty is a zero tensor)."""

    def __init__(self, interventions: Iterable[Intervention] = ()) -> None:
        items = list(interventions)
        for iv in items:
            if not isinstance(iv, Intervention):
                raise TypeError(f"Compose takes Intervention objects, got {type(iv).__name__}")
        if len({id(iv) for iv in items}) != len(items):
            raise ValueError("the same Intervention object was given twice")
        # Stable sort: same stage keeps the given order.
        self.interventions: list[Intervention] = sorted(items, key=lambda iv: iv.order)
        counts: dict[str, int] = {}
        for iv in items:
            counts[iv.name] = counts.get(iv.name, 0) + 1
        seen: dict[str, int] = {}
        self.labels: list[str] = []
        for iv in self.interventions:
            if counts[iv.name] > 1:
                seen[iv.name] = seen.get(iv.name, 0) + 1
                self.labels.append(f"{iv.name}#{seen[iv.name]}")
            else:
                self.labels.append(iv.name)
        self._penalizing = [(label, iv) for label, iv in zip(self.labels, self.interventions) if type(iv).penalty is not Intervention.penalty]
        self.model: Optional[nn.Module] = None
        self.optimizer: Optional[Optimizer] = None
        self.last_event: dict[str, float] = {}
        self.last_penalties: dict[str, torch.Tensor] = {}
        self._zero: Optional[torch.Tensor] = None

    # -- container protocol -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.interventions)

    def __iter__(self) -> Iterator[Intervention]:
        return iter(self.interventions)

    def __bool__(self) -> bool:
        return bool(self.interventions)

    @property
    def structure_version(self) -> int:
        """Sum of the interventions' ``structure_version``: changes exactly when one of
        them changed the parameter set (a training loop compares it to re-copy a target
        network or rebuild per-group LR schedulers)."""
        return sum(getattr(iv, "structure_version", 0) for iv in self.interventions)

    @property
    def per_step(self) -> bool:
        """Whether any intervention may act on every update."""
        return any(iv.per_step for iv in self.interventions)

    # -- hooks --------------------------------------------------------------------------

    def attach(self, model: nn.Module, optimizer: Optional[Optimizer]) -> None:
        """Attach every intervention to ``model`` and ``optimizer`` (once, after both are
        built; before loading any checkpoint)."""
        self.model = model
        self.optimizer = optimizer
        param = next(model.parameters(), None)
        self._zero = param.new_zeros(()) if param is not None else torch.zeros(())
        for iv in self.interventions:
            iv.attach(model, optimizer)

    def penalty(self) -> torch.Tensor:
        """Sum of the penalties (a 0-d tensor with autograd; zero when none)."""
        if not self._penalizing:
            return self._zero if self._zero is not None else torch.zeros(())
        total = None
        self.last_penalties = {}
        for label, iv in self._penalizing:
            value = iv.penalty()
            self.last_penalties[label] = value.detach()
            total = value if total is None else total + value
        return total

    def after_step(self, step: int) -> None:
        """Run every intervention's ``after_step(step)`` by stage, then re-project."""
        self._run("after_step", step)

    def on_task_start(self, task_id: int) -> None:
        """Run every intervention's ``on_task_start(task_id)`` by stage, then re-project."""
        self._run("on_task_start", task_id)

    def on_task_end(self, task_id: int) -> None:
        """Run every intervention's ``on_task_end(task_id)`` by stage, then re-project."""
        self._run("on_task_end", task_id)

    def _run(self, hook: str, arg: int) -> None:
        events: dict[str, float] = {}
        for label, iv in zip(self.labels, self.interventions):
            iv.last_event = {}
            version = getattr(iv, "structure_version", 0)
            getattr(iv, hook)(arg)
            if getattr(iv, "structure_version", 0) != version:
                self._notify_structure_change(iv)
            for key, value in iv.last_event.items():
                events[f"{label}/{key}"] = value
        if events:
            self.project()
        self.last_event = events

    def _notify_structure_change(self, source: Intervention) -> None:
        for other in self.interventions:
            if other is not source:
                other.on_structure_change()

    def project(self) -> None:
        """Run the optimizer's NaP projection now (no-op without a projector)."""
        projector = getattr(self.optimizer, "projector", None)
        if projector is not None and callable(getattr(projector, "project", None)):
            projector.project()

    # -- checkpointing --------------------------------------------------------------------

    def state_dict(self) -> dict:
        """``{"labels": [...], "interventions": [state, ...]}`` in stage order
        (``torch.load(weights_only=True)``-safe)."""
        return {"labels": list(self.labels), "interventions": [iv.state_dict() for iv in self.interventions]}

    def load_state_dict(self, state: dict) -> None:
        """Restore every intervention (call after :meth:`attach`, before loading the
        model's and the optimizer's state; see :mod:`normrl.plasticity.base`).
        Structural interventions load first and re-create their modules; the others are
        told (``on_structure_change``) and then load."""
        if list(state["labels"]) != self.labels:
            raise ValueError(f"saved interventions {state['labels']} do not match these: {self.labels}")
        pairs = list(zip(self.interventions, state["interventions"]))
        # Structural ones first (whatever their stage), so the others load onto the final structure.
        for iv, sub in sorted(pairs, key=lambda pair: not pair[0].structural):
            version = getattr(iv, "structure_version", 0)
            iv.load_state_dict(sub)
            if getattr(iv, "structure_version", 0) != version:
                self._notify_structure_change(iv)

    def __repr__(self) -> str:
        inner = ", ".join(repr(iv) for iv in self.interventions)
        return f"Compose([{inner}])"
