"""Shrink & Perturb (Ash & Adams 2020, "On Warm-Starting Neural Network Training",
arXiv 1910.08475).

Exact variant: when triggered, every trainable parameter becomes
``θ ← shrink·θ + perturb·θ_fresh``, where ``θ_fresh`` is a **new draw** from the
parameter's own module initializer each time (``reset_parameters()`` of a private copy
of the module, run under an RNG seeded from this intervention's generator; modules
without one, e.g. normrl's norm layers, use their deterministic initial value, see
:mod:`normrl.plasticity.fresh`). Two schedules:

* ``every=k`` updates (default ``k=1``): Kumar et al. 2023's per-step setting
  (arXiv 2308.11958, code ``skumar9876/L2_Init`` ``ShrinkAndPerturbAgent``: a new random
  model every step); default ``shrink=1 − 1e-3 = 0.999``, ``perturb=1e-2`` (their best
  with Adam on Permuted MNIST; 1 − 1e-4 on Random-Label MNIST);
* ``at="task_end"``: Ash & Adams' setting (once per data round; their
  ``warm_start/run.py``: shrink 0.4, perturb 0.1), defaults ``shrink=0.4``,
  ``perturb=0.1``. (Ash & Adams also rebuild Adam every round; combine with an optimizer
  reset at the task switch for that.)

Norm-layer parameters are shrunk and perturbed too (the whole network, as in both
papers), unless ``include_norm=False``. Frozen parameters (an injected head's old part)
are left alone. With NaP, :class:`~normrl.plasticity.Compose` re-projects afterwards.

Plasticine difference: ``plasticine/c51_atari_base.py`` (``plasticine_shrink_and_perturb``,
``shrink_p=0.999999``) pulls towards ``init_encoder``/``init_policy``, deep copies of the
*initial* weights taken once in ``__init__``; a fixed target makes S&P a deterministic
pull towards θ₀ (an L2-init in disguise, Kumar et al. A.3) with no perturbation at all.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn as nn

from normrl.normalization.nap import is_normalization
from normrl.plasticity.base import STAGE_SHRINK_PERTURB, Intervention, make_generator
from normrl.plasticity.layers import owns_parameters
from normrl.plasticity.registry import register_intervention
from normrl.plasticity.trigger import Trigger, TriggeredHooks

__all__ = ["ShrinkPerturb"]


@register_intervention("shrink_perturb", paper="Ash & Adams 2020, arXiv 1910.08475", description="θ ← shrink·θ + perturb·θ_fresh, a new draw from each layer's initializer (per step or at task end)")
class ShrinkPerturb(TriggeredHooks, Intervention):
    """Shrink & perturb with a fresh initialization draw each time (module docstring).

    Args:
        shrink: the factor on θ [0.999 per step, 0.4 at task end].
        perturb: the factor on the fresh draw [0.01 per step, 0.1 at task end].
        every: act after every ``every``-th optimizer step [1 when ``at`` is None].
        at: ``"task_end"`` to act at every task end instead [None].
        include_norm: also shrink/perturb norm-layer parameters [True].
        seed: seed of the intervention's generator [0].
    """

    order = STAGE_SHRINK_PERTURB
    per_step = True

    def __init__(
        self,
        shrink: Optional[float] = None,
        perturb: Optional[float] = None,
        every: Optional[int] = None,
        at: Optional[str] = None,
        include_norm: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.trigger = Trigger(every, at, default_every=1)
        per_step = self.trigger.every is not None
        self.shrink = float(shrink) if shrink is not None else (0.999 if per_step else 0.4)
        self.perturb = float(perturb) if perturb is not None else (0.01 if per_step else 0.1)
        if not 0.0 <= self.shrink <= 1.0:
            raise ValueError(f"shrink must be in [0, 1], got {self.shrink!r}")
        if not self.perturb >= 0.0:
            raise ValueError(f"perturb must be >= 0, got {self.perturb!r}")
        self.per_step = per_step
        self.include_norm = bool(include_norm)
        self.generator = make_generator(seed)
        self._entries: list[tuple[nn.Module, nn.Module, list[nn.Parameter], list[torch.Tensor]]] = []

    def attach(self, model, optimizer) -> None:
        super().attach(model, optimizer)
        self._entries = []
        self._refresh()

    def on_structure_change(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        model = self._require_attached()
        known = {id(module): scratch for module, scratch, _, _ in self._entries}
        entries = []
        for module in model.modules():
            if not owns_parameters(module) or (not self.include_norm and is_normalization(module)):
                continue
            names = [n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
            if not names:
                continue
            scratch = known.get(id(module))
            if scratch is None:
                scratch = copy.deepcopy(module)  # holds the initial value of modules without reset_parameters
            own = dict(module.named_parameters(recurse=False))
            fresh = dict(scratch.named_parameters(recurse=False))
            entries.append((module, scratch, [own[n] for n in names], [fresh[n].detach() for n in names]))
        self._entries = entries
        self._params = [p for _, _, ps, _ in entries for p in ps]
        self._fresh = [f for _, _, _, fs in entries for f in fs]

    @torch.no_grad()
    def apply(self) -> None:
        """One shrink-and-perturb event now (what the trigger calls)."""
        if not self._entries:
            self.last_event = {}
            return
        with self.fresh_rng(self._params[0].device):
            for _, scratch, _, _ in self._entries:
                if hasattr(scratch, "reset_parameters"):
                    scratch.reset_parameters()
        torch._foreach_mul_(self._params, self.shrink)
        torch._foreach_add_(self._params, self._fresh, alpha=self.perturb)
        self.last_event = {"perturbed/params": float(len(self._params))}

    def extra_repr(self) -> str:
        return f"shrink={self.shrink}, perturb={self.perturb}, {self.trigger!r}, include_norm={self.include_norm}"
