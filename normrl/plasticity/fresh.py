"""Fresh initializations of a network's modules, drawn from each module's own initializer.

Shrink & perturb, layer resets and plasticity injection all need "a new draw from the
layer's initializer". :class:`FreshInit` gives one for every parameter-owning module:

* a module with ``reset_parameters()`` (``nn.Linear``, ``nn.Conv*``, torch norms) is
  re-initialized by it, drawing from the global RNG; callers run it under
  :meth:`~normrl.plasticity.base.Intervention.fresh_rng`, so the draw comes from the
  intervention's seed and the training run's RNG is left as it was;
* a module without one (normrl's own norm layers: gain 1, offset 0; DyT's α = 0.5;
  AdaB²N's task logits = 0) must have a deterministic initialization, and its fresh
  value is the value it had when :class:`FreshInit` was built (at ``attach``, i.e. at
  initialization; on resume ``attach`` again sees a freshly built model).

A network-specific re-scaling applied after construction (PPO's 0.01 policy-head gain,
the SELU MLP's LeCun-normal init) is not part of ``reset_parameters()`` and is not
reproduced: a fresh draw is PyTorch's default initialization of that layer type.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.plasticity.layers import owns_parameters

__all__ = ["FreshInit"]


class FreshInit:
    """Records the deterministic initial values of parameter-owning modules that have no
    ``reset_parameters()`` and re-initializes any module of ``model`` (or a deepcopy of
    one, via ``source=``)."""

    def __init__(self, model: nn.Module) -> None:
        self._snapshots: dict[int, list[torch.Tensor]] = {}
        self.add(model)

    def add(self, model: nn.Module) -> None:
        """Record snapshots for modules of ``model`` not seen yet (after a structural
        change: an injected head's norm layers start at their fresh values)."""
        with torch.no_grad():
            for module in model.modules():
                if owns_parameters(module) and not hasattr(module, "reset_parameters") and id(module) not in self._snapshots:
                    self._snapshots[id(module)] = [p.detach().clone() for p in module.parameters(recurse=False)]

    def can_reinit(self, module: nn.Module) -> bool:
        """Whether :meth:`reinit_` knows how to re-initialize ``module``."""
        return hasattr(module, "reset_parameters") or id(module) in self._snapshots

    @torch.no_grad()
    def reinit_(self, module: nn.Module, source: nn.Module | None = None) -> None:
        """Re-initialize the parameters ``module`` owns, in place (same Parameter objects).

        ``source``: the module whose recorded snapshot stands for ``module``'s initial
        value when ``module`` is a copy made after the snapshot (used for modules without
        ``reset_parameters()``). Raises ValueError when neither applies.
        """
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
            return
        key = id(source if source is not None else module)
        if key not in self._snapshots:
            raise ValueError(
                f"{type(module).__name__} has no reset_parameters() and no recorded initial value; "
                "give it a reset_parameters() method or attach the intervention right after building the model"
            )
        for p, v in zip(module.parameters(recurse=False), self._snapshots[key]):
            p.copy_(v)
