"""Plasticity injection (Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney & Barreto 2023,
"Deep Reinforcement Learning with Plasticity Injection", arXiv 2305.15555).

Exact variant: at the injection point the head ``h_θ`` of every selected chain is frozen
and replaced by :class:`InjectedHead`, computing

    h_θ(x) + ( h_θ'₁(x) − stopgrad(h_θ'₂(x)) )

where ``θ'₁ = θ'₂`` is one fresh initialization (each module's ``reset_parameters()``,
drawn under an RNG seeded from this intervention's generator). The bracket is exactly
zero at injection (the two copies compute the same numbers), so the network's output
is unchanged bit for bit; only ``θ'₁`` trains (``θ`` and ``θ'₂`` have
``requires_grad=False``), so the number of trainable parameters of the head is the
same as before. Heads with dropout or batch statistics do not keep the output exactly
(the two copies draw different masks / see the batch in different states).

"Head" = the tail of a chain from its ``k``-th-last Linear/Conv layer to its end
(:func:`normrl.plasticity.layers.head_slots`). The paper injects into the head on top
of the encoder, and the encoder keeps training (here too: only the head is frozen);
default ``k=1``, the output layer, is our choice (``k=2`` is the fully connected head of
the Nature CNN). ``chains="all"`` injects into every chain (actor and critic of an
actor-critic), ``"last"`` into the last one, or name one chain.

When: at the start of task ``task`` (default 1, i.e. the first task switch; with
``repeat=True`` at every later task start too), or, with ``step=n``, once after optimizer
step ``n`` (the paper's single-task setting injects once mid-training; its exact time is
not stated in the text we read). A model whose head is already an :class:`InjectedHead`
gets the next injection **on top**: the whole previous InjectedHead becomes the frozen
``h_θ`` and a fresh copy of its trainable part is injected (the forward cost of the
head grows by the two new copies each time, as with nested injections in Plasticine's
PPO-Procgen runs).

Structure and resume: injection changes the parameter set, so the optimizer and the NaP
projector are rebound (:func:`~normrl.plasticity.rebind.rebind_optimizer`: the new
trainable parameters become a new param group with the first group's
hyperparameters; the frozen ones leave the optimizer). ``state_dict`` records each
injection; ``load_state_dict`` on a freshly built model replays them (the module
structure only; the values come from the model's state dict), so resume in the order:
intervention state, then ``model.load_state_dict``, then ``optimizer.load_state_dict``.
A target network that is a copy of the online network must be re-copied after an
injection (or given the same structure with :func:`inject_head` ``(target, reinit=False)``
and then loaded from the online network).

Plasticine difference: its ``Injector`` (``plasticine/c51_atari_base.py``,
``plasticine_plasticity_injection``) wraps the whole policy without freezing the
original, and the optimizer built once in ``plasticine/c51_atari_plasticine.py`` never
receives ``new_a``, so the injected head never trains.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Optional

import torch
import torch.nn as nn

from normrl.plasticity.base import STAGE_STRUCTURE, Intervention, make_generator
from normrl.plasticity.fresh import FreshInit
from normrl.plasticity.layers import head_slots, owns_parameters
from normrl.plasticity.rebind import rebind_optimizer
from normrl.plasticity.registry import register_intervention

__all__ = ["InjectedHead", "PlasticityInjection", "inject_head"]


class InjectedHead(nn.Module):
    """``old(x) + (new(x) − new_frozen(x).detach())`` with ``old`` and ``new_frozen``
    frozen (Nikishin et al. 2023, arXiv 2305.15555).

    Args:
        old: the previous head (frozen here).
        new: a freshly initialized module of the same structure (trainable).
        depth: how many weight layers the head spans (``k``), for a later injection.

    ``new_frozen`` is a deep copy of ``new`` made here, so the bracket is exactly zero
    at construction.
    """

    is_injected_head = True

    def __init__(self, old: nn.Module, new: nn.Module, depth: int) -> None:
        super().__init__()
        self.old = old
        self.new = new
        self.new_frozen = copy.deepcopy(new)
        self.old.requires_grad_(False)
        self.new_frozen.requires_grad_(False)
        self.depth = int(depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.old(x) + (self.new(x) - self.new_frozen(x).detach())

    def extra_repr(self) -> str:
        return f"depth={self.depth}"


def _replace_slice(parent: nn.Sequential, keys: list, module: nn.Module) -> str:
    items = list(parent._modules.items())
    first = keys[0]
    rebuilt: "OrderedDict[str, nn.Module]" = OrderedDict()
    for key, m in items:
        if key == first:
            rebuilt[key] = module
        elif key not in keys:
            rebuilt[key] = m
    parent._modules = rebuilt
    return first


def inject_head(
    model: nn.Module,
    k: int = 1,
    chains: str = "all",
    *,
    reinit: bool = True,
    fresh: Optional[FreshInit] = None,
) -> list[str]:
    """Replace the head of depth ``k`` of every selected chain of ``model`` by an
    :class:`InjectedHead`, in place; return the names of the new modules.

    ``reinit=True`` draws the new part from the global RNG (run it under a seeded RNG;
    :class:`PlasticityInjection` does); ``reinit=False`` copies the old values (the
    structure alone: for replaying a recorded injection before loading a state dict).
    ``fresh``: the :class:`~normrl.plasticity.fresh.FreshInit` holding the initial values
    of modules without ``reset_parameters()`` [None: built from ``model`` now, which is
    only right for modules whose current value is their initial one].
    Does not touch any optimizer (see :class:`PlasticityInjection`).
    """
    if fresh is None and reinit:
        fresh = FreshInit(model)
    names = []
    for chain, slots in head_slots(model, k, chains):
        head = slots[0].module
        if getattr(head, "is_injected_head", False):
            if head.depth != k:
                raise ValueError(f"chain {chain.name!r} already has an injected head of depth {head.depth}; inject again with k={head.depth}")
            old: nn.Module = nn.Sequential(head)
            source = head.new
        else:
            old = nn.Sequential(*[s.module for s in slots])
            source = old
        new = copy.deepcopy(source)
        if reinit:
            with torch.no_grad():
                for module, src in zip(new.modules(), source.modules()):
                    if owns_parameters(module):
                        fresh.reinit_(module, source=src)
        new.requires_grad_(True)
        key = _replace_slice(slots[0].parent, [s.key for s in slots], InjectedHead(old, new, depth=k))
        prefix = slots[0].name.rsplit(".", 1)[0] if "." in slots[0].name else ""
        names.append(f"{prefix}.{key}" if prefix else key)
    return names


@register_intervention("plasticity_injection", paper="Nikishin et al. 2023, arXiv 2305.15555", description="freeze the head and add h'₁ − stopgrad(h'₂), h'₁ = h'₂ fresh, at a task switch (output unchanged)")
class PlasticityInjection(Intervention):
    """Plasticity injection at a task start or after a given step (module docstring).

    Args:
        k: head depth in weight layers [1: the output layer].
        task: inject at the start of this task [1: the first switch].
        repeat: also inject at the start of every later task [False].
        step: inject once after this optimizer step instead of at a task start [None].
        chains: ``"all"``, ``"last"`` or a chain's module name [``"all"``].
        seed: seed of the intervention's generator [0].
    """

    order = STAGE_STRUCTURE
    per_step = False
    structural = True

    def __init__(self, k: int = 1, task: int = 1, repeat: bool = False, step: Optional[int] = None, chains: str = "all", seed: int = 0) -> None:
        super().__init__()
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if not isinstance(task, int) or isinstance(task, bool) or task < 0:
            raise ValueError(f"task must be a non-negative int, got {task!r}")
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
            raise ValueError(f"step must be a positive int or None, got {step!r}")
        self.k = k
        self.task = task
        self.repeat = bool(repeat)
        self.step = step
        self.chains = chains
        self.generator = make_generator(seed)
        self.injections: list[list[str]] = []
        self._fresh: Optional[FreshInit] = None

    def attach(self, model, optimizer) -> None:
        super().attach(model, optimizer)
        self._fresh = FreshInit(model)
        head_slots(model, self.k, self.chains)  # validate k and chains now

    def _inject(self, reinit: bool) -> list[str]:
        model = self._require_attached()
        device = next(model.parameters()).device
        if reinit:
            with self.fresh_rng(device):
                names = inject_head(model, self.k, self.chains, reinit=True, fresh=self._fresh)
        else:
            names = inject_head(model, self.k, self.chains, reinit=False)
        self._fresh.add(model)
        if self.optimizer is not None:
            rebind_optimizer(self.optimizer, model)
        self.injections.append(names)
        self.structure_version += 1
        return names

    def inject(self) -> list[str]:
        """Inject now; returns the names of the new :class:`InjectedHead` modules."""
        names = self._inject(reinit=True)
        self.last_event = {f"injected/{name}": 1.0 for name in names}
        return names

    def on_task_start(self, task_id: int) -> None:
        self.last_event = {}
        if self.step is None and (task_id == self.task or (self.repeat and task_id > self.task)):
            self.inject()

    def after_step(self, step: int) -> None:
        self.last_event = {}
        if self.step is not None and step == self.step and not self.injections:
            self.inject()

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["injections"] = [list(names) for names in self.injections]
        return state

    def load_state_dict(self, state: dict) -> None:
        saved = [list(names) for names in state["injections"]]
        if self.injections and self.injections != saved[: len(self.injections)]:
            raise ValueError(f"this model already has injections {self.injections}, the state records {saved}")
        for expected in saved[len(self.injections):]:
            names = self._inject(reinit=False)
            if names != expected:
                raise ValueError(f"replaying an injection created {names}, the state records {expected}: the model is not the one saved")
        super().load_state_dict(state)

    def extra_repr(self) -> str:
        when = f"step={self.step}" if self.step is not None else f"task={self.task}, repeat={self.repeat}"
        return f"k={self.k}, {when}, chains={self.chains!r}"
