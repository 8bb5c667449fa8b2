"""Coupled L2 regularization: the penalty ``½·λ·Σ‖θ‖²`` added to the loss.

"Coupled" means the penalty goes through the loss, so with Adam its gradient ``λθ``
is rescaled by the second-moment estimate like any other gradient (Adam's own
``weight_decay`` does the same; AdamW's decoupled decay does not). Baseline of Kumar,
Marklund & Van Roy 2023 (arXiv 2308.11958), whose code (``skumar9876/L2_Init``,
``agents.py``) computes ``λ·0.5·Σθ²`` over the trainable parameters except LayerNorm's,
with λ = 1e-2 the best value there. Plasticine uses Adam ``weight_decay=1e-3`` instead
(``plasticine/c51_atari_plasticine.py``).

Exact variant: penalty ``0.5·lam·Σ_p Σ_i p_i²`` over the trainable parameters
(``requires_grad``), norm-layer parameters excluded unless ``include_norm=True`` (a
norm's gain pulled towards 0 fights the normalization; Kumar's code excludes them).
Defaults: ``lam=1e-2``, ``include_norm=False``. With normalization layers, decay of
scale-invariant weights raises their effective learning rate (Lyle et al. 2024,
arXiv 2407.01800); NaP's projection undoes the shrinkage after every step.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.nap import is_normalization
from normrl.plasticity.base import STAGE_PENALTY, Intervention
from normrl.plasticity.registry import register_intervention

__all__ = ["L2", "regularized_parameters", "squared_norm_sum"]


def regularized_parameters(model: nn.Module, include_norm: bool) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every trainable parameter, norm-layer parameters
    (:func:`~normrl.normalization.nap.is_normalization`) left out unless ``include_norm``."""
    skip: set[int] = set()
    if not include_norm:
        for module in model.modules():
            if is_normalization(module):
                skip.update(id(p) for p in module.parameters())
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in skip]


def _foreach_has_autograd() -> bool:
    probe = torch.ones(1, requires_grad=True)
    try:
        return bool(torch._foreach_norm([probe])[0].requires_grad)
    except (RuntimeError, AttributeError):
        return False


_FOREACH_AUTOGRAD = _foreach_has_autograd()


def squared_norm_sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``Σ_t ‖t‖²`` with autograd (one fused kernel per device where torch supports it)."""
    if _FOREACH_AUTOGRAD and len({t.device for t in tensors}) == 1:
        return torch.stack(torch._foreach_norm(tensors)).square().sum()
    return sum(t.square().sum() for t in tensors)


@register_intervention("l2", paper="coupled L2 (baseline of Kumar et al. 2023, arXiv 2308.11958)", description="penalty ½λ‖θ‖² on trainable non-norm parameters")
class L2(Intervention):
    """Coupled L2 penalty ``0.5·lam·Σθ²`` (see the module docstring).

    Args:
        lam: λ [1e-2, Kumar et al.'s best].
        include_norm: also penalize norm-layer parameters [False].
    """

    order = STAGE_PENALTY
    per_step = True

    def __init__(self, lam: float = 1e-2, include_norm: bool = False) -> None:
        super().__init__()
        if not float(lam) >= 0.0:
            raise ValueError(f"lam must be >= 0, got {lam!r}")
        self.lam = float(lam)
        self.include_norm = bool(include_norm)
        self._params: list[nn.Parameter] = []

    def attach(self, model, optimizer) -> None:
        super().attach(model, optimizer)
        self._refresh()

    def on_structure_change(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        self._params = [p for _, p in regularized_parameters(self._require_attached(), self.include_norm)]

    def penalty(self) -> torch.Tensor:
        if not self._params or self.lam == 0.0:
            return self._zero()
        return 0.5 * self.lam * squared_norm_sum(self._params)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, include_norm={self.include_norm}"
