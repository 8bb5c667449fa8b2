"""Layer resets against the primacy bias (Nikishin, Schwarzer, D'Oro, Bacon & Courville
2022, "The Primacy Bias in Deep Reinforcement Learning", arXiv 2205.07802).

Exact variant: when triggered, the **head of depth k** of every selected chain (the
chain's tail from its ``k``-th-last Linear/Conv layer to its end, norm layers in between
included; see :mod:`normrl.plasticity.layers`) is re-initialized in place from each
module's own initializer (``reset_parameters()``, drawn under an RNG seeded from this
intervention's generator; deterministic-init modules without one return to their
initial value), **and the optimizer state of those parameters is cleared**
(:func:`~normrl.normalization.reset_optimizer_state`: Adam moments and step count, so
bias correction starts over for them). Parameters keep their identity, so the optimizer
and the NaP projector stay bound; :class:`~normrl.plasticity.Compose` re-projects.

Schedules: ``at="task_end"`` (default; as LoP's per-task head reset) or ``every=k``
optimizer steps (the paper's periodic resets: SAC every 2·10⁵ env steps of all layers,
SPR every 2·10⁴ of the head; repository ``evgenii-nikishin/rl_with_resets``).
Defaults: ``k=1`` (the output layer), ``chains="all"`` (an actor-critic's actor and
critic heads both), ``at="task_end"``. A chain with fewer than ``k`` weight layers is a
ValueError at ``attach``. Frozen parameters (the old part of an injected head) are not
reset.

Plasticine difference: ``plasticine/c51_atari_base.py`` (``plasticine_reset_layers``)
replaces the encoder/policy by newly built modules while the optimizer built once in
``plasticine/c51_atari_plasticine.py`` keeps the old parameters, so the reset layers
never train again; their Adam state is never cleared either.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from normrl.normalization.optimizer_reset import reset_optimizer_state
from normrl.plasticity.base import STAGE_RESET, Intervention, make_generator
from normrl.plasticity.fresh import FreshInit
from normrl.plasticity.layers import head_slots, owns_parameters
from normrl.plasticity.rebind import optimizer_params
from normrl.plasticity.registry import register_intervention
from normrl.plasticity.trigger import Trigger, TriggeredHooks

__all__ = ["ResetLayers"]


@register_intervention("reset_layers", paper="Nikishin et al. 2022, arXiv 2205.07802", description="re-initialize the last k layers of each head and clear their optimizer state (periodically or at task end)")
class ResetLayers(TriggeredHooks, Intervention):
    """Reset the head of depth ``k`` and its optimizer state (module docstring).

    Args:
        k: how many weight layers, counted from the output, to reset [1].
        every: reset after every ``every``-th optimizer step [None].
        at: ``"task_end"`` [default when ``every`` is None].
        chains: ``"all"``, ``"last"`` or a chain's module name [``"all"``].
        seed: seed of the intervention's generator [0].
    """

    order = STAGE_RESET
    per_step = False

    def __init__(self, k: int = 1, every: Optional[int] = None, at: Optional[str] = None, chains: str = "all", seed: int = 0) -> None:
        super().__init__()
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.k = k
        self.trigger = Trigger(every, at, default_at="task_end")
        self.per_step = self.trigger.every is not None
        self.chains = chains
        self.generator = make_generator(seed)
        self._fresh: Optional[FreshInit] = None

    def attach(self, model, optimizer) -> None:
        super().attach(model, optimizer)
        self._fresh = FreshInit(model)
        self.reset_modules()  # validates k and chains now rather than at the first reset

    def on_structure_change(self) -> None:
        self._fresh.add(self._require_attached())

    def reset_modules(self) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` of the parameter-owning modules a reset re-initializes."""
        out = []
        for _, slots in head_slots(self._require_attached(), self.k, self.chains):
            for slot in slots:
                for sub_name, module in slot.module.named_modules():
                    if owns_parameters(module) and any(p.requires_grad for p in module.parameters(recurse=False)):
                        out.append((f"{slot.name}.{sub_name}" if sub_name else slot.name, module))
        return out

    @torch.no_grad()
    def apply(self) -> None:
        """Reset now (what the trigger calls)."""
        modules = self.reset_modules()
        params = [p for _, m in modules for p in m.parameters(recurse=False)]
        device = params[0].device if params else None
        with self.fresh_rng(device):
            for _, module in modules:
                self._fresh.reinit_(module)
        if self.optimizer is not None:
            owned = {id(p) for p in optimizer_params(self.optimizer)}
            reset_optimizer_state(self.optimizer, [p for p in params if id(p) in owned])
        self.last_event = {f"reset/{name}": 1.0 for name, _ in modules}

    def extra_repr(self) -> str:
        return f"k={self.k}, {self.trigger!r}, chains={self.chains!r}"
