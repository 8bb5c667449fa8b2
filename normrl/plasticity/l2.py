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

__all__ = ["L2", "regularized_parameters", "half_squared_distance"]


def regularized_parameters(model: nn.Module, include_norm: bool) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every trainable parameter, norm-layer parameters
    (:func:`~normrl.normalization.nap.is_normalization`) left out unless ``include_norm``."""
    skip: set[int] = set()
    if not include_norm:
        for module in model.modules():
            if is_normalization(module):
                skip.update(id(p) for p in module.parameters())
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in skip]


def _foreach_tensor_scalar_ok() -> bool:
    try:
        torch._foreach_mul([torch.ones(1)], torch.ones(()))
        return True
    except (RuntimeError, TypeError, AttributeError):
        return False


_FOREACH_TENSOR_SCALAR = _foreach_tensor_scalar_ok()


class _HalfSquaredDistance(torch.autograd.Function):
    """``0.5·lam·Σ‖p − a‖²`` with the closed-form backward ``lam·(p − a)``: two fused
    kernels each way instead of a graph of per-tensor ops (the penalty runs on every
    update). Not twice differentiable (``once_differentiable``): a Hessian of a loss
    that includes it raises instead of silently missing ``lam·I``."""

    @staticmethod
    def forward(ctx, lam: float, anchors, *params):
        diffs = torch._foreach_sub(params, anchors) if anchors is not None else params
        ctx.lam = lam
        ctx.save_for_backward(*diffs)
        return 0.5 * lam * torch.stack(torch._foreach_norm(diffs)).square().sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        diffs = ctx.saved_tensors
        return (None, None, *torch._foreach_mul(diffs, grad * ctx.lam))


def half_squared_distance(lam: float, params: list[torch.Tensor], anchors: list[torch.Tensor] | None = None) -> torch.Tensor:
    """``0.5·lam·Σ_p ‖p − a_p‖²`` (``a_p = 0`` when ``anchors`` is None), differentiable
    w.r.t. ``params`` (not w.r.t. ``anchors``)."""
    if _FOREACH_TENSOR_SCALAR and len({p.device for p in params}) == 1:
        return _HalfSquaredDistance.apply(lam, anchors, *params)
    if anchors is None:
        return 0.5 * lam * sum(p.square().sum() for p in params)
    return 0.5 * lam * sum((p - a).square().sum() for p, a in zip(params, anchors))


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

    def _anchors(self) -> list[torch.Tensor] | None:
        """The points the penalty pulls towards, one per parameter; None: zero."""
        return None

    def penalty(self) -> torch.Tensor:
        if not self._params or self.lam == 0.0:
            return self._zero()
        return half_squared_distance(self.lam, self._params, self._anchors())

    def extra_repr(self) -> str:
        return f"lam={self.lam}, include_norm={self.include_norm}"
