"""The protocol every plasticity intervention follows, and the calling contract.

An intervention changes how a network is trained so that it keeps its ability to
learn (its *plasticity*): a penalty added to the loss (L2, L2-init, Parseval), an edit
of the parameters after the optimizer step (ReDo, continual backprop, shrink & perturb,
layer resets, LiNeS) or a change of the network's structure (plasticity injection).
All of them are :class:`Intervention` subclasses with the same hooks, so a training
loop calls one object (usually a :class:`~normrl.plasticity.Compose`) and never needs
to know which methods are active.

Calling contract (what an agent, the online learner or the SB3 callback does)::

    interventions = build_interventions(["redo:tau=0.1,every=1000", "l2_init:lam=1e-4"], seed=cfg.seed)
    interventions.attach(model, optimizer)        # once, after both are built
    ...
    loss = loss + interventions.penalty()         # before backward (0-d tensor, 0 when none)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    interventions.after_step(num_updates)         # after every optimizer step; num_updates
                                                  # counts optimizer steps, 1 after the first
    interventions.on_task_start(task_id)          # from the task hooks of the stream
    interventions.on_task_end(task_id)
    log(interventions.last_event)                 # {"redo/reset_units/net.0": 3, ...}; {} when
                                                  # the last call changed nothing

``attach`` is called exactly once per (model, optimizer) pair, before any other hook.
``on_task_start(0)`` for the first task is expected (it is where LiNeS takes its
snapshot and where an injection scheduled for task 0 would happen); ``on_task_end(t)``
comes before ``on_task_start(t + 1)``.

Checkpoints: ``state_dict()`` holds only tensors, Python numbers, strings, bools, None
and lists/dicts of those, so ``torch.load(path, weights_only=True)`` reads it. The RNG
of a stochastic intervention is saved as the uint8 tensor of
``torch.Generator.get_state()``, so a resumed run draws exactly the numbers the
uninterrupted run would have. Resume in this order:

1. build the model and the optimizer exactly as for a fresh run;
2. ``interventions.attach(model, optimizer)``;
3. ``interventions.load_state_dict(saved["interventions"])`` — a structural
   intervention (plasticity injection) re-creates the modules it added, and the
   optimizer and NaP projector are rebound to them;
4. ``model.load_state_dict(saved["model"])``;
5. ``optimizer.load_state_dict(saved["optimizer"])``.

Parameter edits keep the ``Parameter`` objects (they write in place), so the optimizer
and the NaP projector stay bound to them. Only a structural intervention
(``structural = True``) changes the parameter set; it rebinds the optimizer and the
projector itself (:func:`~normrl.plasticity.rebind.rebind_optimizer`), and
:class:`~normrl.plasticity.Compose` then calls :meth:`Intervention.on_structure_change`
on every other intervention so they can refresh their own bookkeeping (parameter
lists, unit graphs). A module that kept a direct reference to a replaced submodule
(e.g. the old output layer) must look it up again; a target network that is a
``deepcopy`` of the online one must be re-copied after a structural change
(``Compose.structure_version`` changes exactly then).

Writing a subclass (the interface below is stable; changes will be announced here):

* a structural intervention increments ``self.structure_version`` whenever it changed
  the parameter set and rebinds the optimizer itself
  (:func:`~normrl.plasticity.rebind.rebind_optimizer`);
* set the class attributes ``order`` (one of the ``STAGE_*`` constants: the stage in
  which :class:`~normrl.plasticity.Compose` runs it), ``per_step`` (True when it may
  act on every update, for the overhead benchmark) and ``structural`` (True when it
  may change the parameter set);
* call ``super().__init__()`` and, if stochastic, ``self.generator =
  make_generator(seed)``; draw only from ``self.generator`` (or from the RNG forked by
  :meth:`Intervention.fresh_rng`), never from the global RNG;
* override the hooks it needs; every hook that can change parameters sets
  ``self.last_event`` to a dict ``{"<what>/<layer name>": number}`` of what it changed,
  and to ``{}`` when it changed nothing;
* override :meth:`Intervention.state_dict` / :meth:`Intervention.load_state_dict`,
  extending ``super()``'s dictionary (which holds the generator state);
* register it with ``@register_intervention(name, paper=..., description=...)``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import torch
import torch.nn as nn
from torch.optim import Optimizer

__all__ = [
    "Intervention",
    "make_generator",
    "STAGE_PENALTY",
    "STAGE_STRUCTURE",
    "STAGE_MERGE",
    "STAGE_RESET",
    "STAGE_SHRINK_PERTURB",
]

#: Penalty-only interventions (L2, L2-init, Parseval): their hooks change no parameter.
STAGE_PENALTY = 0
#: Structural changes (plasticity injection) run first, so every later stage sees the
#: final parameter set.
STAGE_STRUCTURE = 10
#: Rescaling the update since the task start (LiNeS), before any reset so that a layer
#: reset at the same task end stays a fresh initialization.
STAGE_MERGE = 20
#: Unit and layer resets (ReDo, continual backprop, reset_layers).
STAGE_RESET = 30
#: Shrink & perturb, after the resets (a reset unit is then shrunk and perturbed like
#: every other one).
STAGE_SHRINK_PERTURB = 40
# The NaP projection is not an intervention: Compose re-runs the optimizer's projector
# after every stage above, whenever one of them changed parameters.


def make_generator(seed: int, device: Optional[torch.device] = None) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (interventions keep their RNG on
    the CPU so that a saved state is device independent; ``device`` is accepted for
    symmetry and must be CPU or None)."""
    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"intervention generators live on the CPU, got device={device!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    return torch.Generator().manual_seed(seed)


class Intervention:
    """Base class of every plasticity intervention (see the module docstring for the
    calling contract and the resume order).

    Class attributes:
        name: the registry name (set by ``register_intervention``).
        order: the stage in :class:`~normrl.plasticity.Compose` (a ``STAGE_*`` constant).
        per_step: whether it may act on every update (penalties count: they cost on
            every update).
        structural: whether it may change the parameter set.

    Attributes:
        model, optimizer: what :meth:`attach` received (None before).
        generator: the intervention's own ``torch.Generator`` (None when deterministic).
        last_event: what the last hook call changed, ``{"<what>/<layer>": number}``;
            ``{}`` when nothing changed.
        structure_version: incremented by a structural intervention every time it
            changes the parameter set (also when ``load_state_dict`` re-creates a
            change); :class:`~normrl.plasticity.Compose` compares it around each call.
    """

    name: str = "intervention"
    order: int = STAGE_RESET
    per_step: bool = False
    structural: bool = False

    def __init__(self) -> None:
        self.model: Optional[nn.Module] = None
        self.optimizer: Optional[Optimizer] = None
        self.generator: Optional[torch.Generator] = None
        self.last_event: dict[str, float] = {}
        self.structure_version = 0

    # -- hooks ----------------------------------------------------------------------------

    def attach(self, model: nn.Module, optimizer: Optional[Optimizer]) -> None:
        """Bind to ``model`` and ``optimizer`` (the one updating ``model``; a
        ``ProjectedOptimizer`` for NaP). Subclasses record what they need (initial
        weights, layer lists) after calling ``super().attach``. ``optimizer`` may be None
        only for interventions that never touch optimizer state."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__}.attach expects an nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
        self.model = model
        self.optimizer = optimizer

    def penalty(self) -> torch.Tensor:
        """The term added to the loss (a 0-d tensor with autograd; zero when none)."""
        return self._zero()

    def after_step(self, step: int) -> None:
        """Called after every optimizer step; ``step`` = optimizer steps so far (1 after
        the first)."""
        self.last_event = {}

    def on_task_start(self, task_id: int) -> None:
        """Called when task ``task_id`` starts (task 0 included)."""
        self.last_event = {}

    def on_task_end(self, task_id: int) -> None:
        """Called when task ``task_id`` ends (before the next one starts)."""
        self.last_event = {}

    def on_structure_change(self) -> None:
        """Called by :class:`~normrl.plasticity.Compose` after another intervention
        changed the parameter set (the model and optimizer objects are the same; some of
        their parameters are new). Refresh cached parameter or module lists here."""

    # -- checkpointing ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly: here the generator state; subclasses
        extend the dict. Only tensors, numbers, strings, bools, None, lists and dicts."""
        state: dict[str, Any] = {"name": self.name}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (call after :meth:`attach`)."""
        if state.get("name", self.name) != self.name:
            raise ValueError(f"state of intervention {state.get('name')!r} given to {self.name!r}")
        if self.generator is not None:
            if "generator" not in state:
                raise ValueError(f"{self.name}: saved state has no generator state")
            self.generator.set_state(state["generator"])

    # -- helpers for subclasses -----------------------------------------------------------

    def _require_attached(self) -> nn.Module:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call attach(model, optimizer) first")
        return self.model

    def _zero(self) -> torch.Tensor:
        model = self.model
        if model is not None:
            for p in model.parameters():
                return p.new_zeros(())
        return torch.zeros(())

    def _draw_seed(self) -> int:
        """A 63-bit seed drawn from ``self.generator`` (for a forked RNG)."""
        if self.generator is None:
            raise RuntimeError(f"{self.name} has no generator; pass seed= and call make_generator")
        return int(torch.randint(0, 2**63 - 1, (1,), generator=self.generator).item())

    @contextlib.contextmanager
    def fresh_rng(self, device: Optional[torch.device] = None) -> Iterator[int]:
        """Run the block under the global RNG seeded from ``self.generator`` and restore
        the global RNG afterwards (the CPU one and ``device``'s when it is a CUDA device).

        This is how a module's own initializer (``reset_parameters()``, which draws from
        the global RNG) gives a fresh draw that is reproducible from the intervention's
        seed without disturbing the training run's RNG. Yields the seed used.
        """
        seed = self._draw_seed()
        cuda_index = None
        if device is not None and torch.device(device).type == "cuda":
            cuda_index = torch.device(device).index
            if cuda_index is None:
                cuda_index = torch.cuda.current_device()
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(cuda_index) if cuda_index is not None else None
        try:
            torch.default_generator.manual_seed(seed)
            if cuda_index is not None:
                with torch.cuda.device(cuda_index):
                    torch.cuda.manual_seed(seed)
            yield seed
        finally:
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, cuda_index)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
