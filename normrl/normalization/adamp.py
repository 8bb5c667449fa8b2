"""AdamP and SGDP: Heo et al. 2021 (ICLR), "AdamP: Slowing Down the Slowdown for
Momentum Optimizers on Scale-invariant Weights", arXiv 2006.08217.

Momentum makes updates of scale-invariant weights (weights followed by a
normalization) grow the weight norm quickly, which shrinks their effective step size.
AdamP/SGDP remove the radial component of the update of such weights.

Exact variant (the paper's Algorithm, written afresh):

For every parameter ``w`` with more than one dimension, after the base optimizer has
produced its update direction ``d`` (Adam: ``m̂/(√v̂ + ε)``, Nesterov form optional;
SGD: the momentum buffer, Nesterov form optional), test two views of ``w`` and of its
gradient ``g``: the *channel-wise* view (one row per output channel: ``w.view(C, -1)``)
and the *layer-wise* view (``w.view(1, -1)``). For the first view whose largest
row-wise ``|cos(g_row, w_row)|`` is below ``delta / sqrt(row_dim)``, the weight is
deemed scale-invariant and the radial part is removed row by row,
``d ← d − ŵ·⟨ŵ, d⟩`` with ``ŵ = w_row/‖w_row‖``, and weight decay is multiplied by
``wd_ratio``. One-dimensional parameters (biases, norm gains) are never projected.

Weight decay is decoupled (applied to the weight, as in AdamW):
AdamP ``w ← w·(1 − lr·wd·r)``, SGDP ``w ← w·(1 − lr·wd·r/(1 − momentum))``, with
``r = wd_ratio`` if projected else 1. With ``delta = 0`` (the check never fires)
and ``weight_decay = 0`` they are exactly Adam / SGD with momentum. The branch is
taken with ``torch.where`` (both views are computed), so a step costs no host
synchronization.

Defaults: AdamP ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, delta=0.1,
wd_ratio=0.1, nesterov=False``; SGDP ``lr`` required, ``momentum=0, dampening=0,
weight_decay=0, nesterov=False, eps=1e-8, delta=0.1, wd_ratio=0.1``.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch.optim import Optimizer

__all__ = ["AdamP", "SGDP"]


def _cosines(g2: torch.Tensor, w2: torch.Tensor, eps: float) -> torch.Tensor:
    """Row-wise ``|cos|`` of two (rows, dim) matrices."""
    dots = (g2 * w2).sum(dim=1).abs()
    return dots / (torch.linalg.vector_norm(g2, dim=1) * torch.linalg.vector_norm(w2, dim=1) + eps)


def _view_projection(weight, grad, update, rows: int, delta: float, eps: float):
    w2 = weight.reshape(rows, -1)
    fires = _cosines(grad.reshape(rows, -1), w2, eps).max() < delta / math.sqrt(w2.shape[1])
    w_hat = w2 / (torch.linalg.vector_norm(w2, dim=1, keepdim=True) + eps)
    d2 = update.reshape(rows, -1)
    return fires, (d2 - w_hat * (w_hat * d2).sum(dim=1, keepdim=True)).reshape(update.shape)


def radial_projection(weight: torch.Tensor, grad: torch.Tensor, update: torch.Tensor, delta: float, eps: float):
    """Return ``(update, projected)``: ``update`` without its radial component if the
    channel-wise or (failing that) the layer-wise cosine check fires (see the module
    docstring), else unchanged. ``projected`` is a 0-d bool tensor.

    Both views are computed and selected with ``torch.where``, so the branch of the
    algorithm costs no host synchronization on an accelerator.
    """
    channel_fires, channel_update = _view_projection(weight, grad, update, weight.shape[0], delta, eps)
    layer_fires, layer_update = _view_projection(weight, grad, update, 1, delta, eps)
    out = torch.where(channel_fires, channel_update, torch.where(layer_fires, layer_update, update))
    return out, channel_fires | layer_fires


def _decay_factor(decay: float, wd_ratio: float, projected):
    """``1 − decay·r`` with ``r = wd_ratio`` where projected, else 1 (a tensor when
    ``projected`` is one, so no host read)."""
    if projected is None:
        return 1 - decay
    return torch.where(projected, 1 - decay * wd_ratio, 1 - decay)


def _check(name: str, value: float, low: float = 0.0) -> None:
    if not value >= low:
        raise ValueError(f"invalid {name}: {value!r} (must be >= {low})")


class AdamP(Optimizer):
    """Adam with radial-component removal for scale-invariant weights (arXiv 2006.08217).

    Args:
        params: parameters or param-group dicts.
        lr: learning rate [1e-3].
        betas: Adam's moment decay rates [(0.9, 0.999)].
        eps: Adam's denominator epsilon, also used in the cosine check [1e-8].
        weight_decay: decoupled weight decay [0].
        delta: cosine threshold ``delta/sqrt(dim)`` [0.1].
        wd_ratio: weight-decay multiplier for projected weights [0.1].
        nesterov: use the Nesterov form ``β₁m + (1−β₁)g`` of the first moment [False].
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 delta: float = 0.1, wd_ratio: float = 0.1, nesterov: bool = False) -> None:
        _check("lr", lr)
        _check("eps", eps)
        _check("weight_decay", weight_decay)
        _check("delta", delta)
        _check("wd_ratio", wd_ratio)
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas: {betas!r} (each must be in [0, 1))")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, delta=delta,
                        wd_ratio=wd_ratio, nesterov=bool(nesterov))
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None):
        """One AdamP update; returns the closure's loss if a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("AdamP does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias_correction1 = 1 - beta1 ** state["step"]
                bias_correction2 = 1 - beta2 ** state["step"]
                denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(group["eps"])
                step_size = group["lr"] / bias_correction1
                if group["nesterov"]:
                    update = (beta1 * exp_avg + (1 - beta1) * grad) / denom
                else:
                    update = exp_avg / denom
                projected = None
                if p.dim() > 1:
                    update, projected = radial_projection(p, grad, update, group["delta"], group["eps"])
                if group["weight_decay"] != 0:
                    decay = group["lr"] * group["weight_decay"]
                    p.mul_(_decay_factor(decay, group["wd_ratio"], projected))
                p.add_(update, alpha=-step_size)
        return loss


class SGDP(Optimizer):
    """SGD (with momentum) with radial-component removal for scale-invariant weights
    (arXiv 2006.08217).

    Args:
        params: parameters or param-group dicts.
        lr: learning rate (required).
        momentum: momentum factor [0].
        dampening: momentum dampening [0].
        weight_decay: decoupled weight decay, divided by ``1 − momentum`` [0].
        nesterov: Nesterov momentum ``g + momentum·buf`` [False].
        eps: epsilon of the cosine check [1e-8].
        delta: cosine threshold ``delta/sqrt(dim)`` [0.1].
        wd_ratio: weight-decay multiplier for projected weights [0.1].
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, eps: float = 1e-8, delta: float = 0.1, wd_ratio: float = 0.1) -> None:
        _check("lr", lr)
        _check("eps", eps)
        _check("weight_decay", weight_decay)
        _check("delta", delta)
        _check("wd_ratio", wd_ratio)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"invalid momentum: {momentum!r} (must be in [0, 1))")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires momentum > 0 and dampening = 0")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=bool(nesterov), eps=eps, delta=delta, wd_ratio=wd_ratio)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None):
        """One SGDP update; returns the closure's loss if a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum, dampening = group["momentum"], group["dampening"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("SGDP does not support sparse gradients")
                if momentum != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = grad.clone()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                    update = grad + momentum * buf if group["nesterov"] else buf
                else:
                    update = grad
                projected = None
                if p.dim() > 1:
                    update, projected = radial_projection(p, grad, update, group["delta"], group["eps"])
                if group["weight_decay"] != 0:
                    decay = group["lr"] * group["weight_decay"] / (1 - momentum)
                    p.mul_(_decay_factor(decay, group["wd_ratio"], projected))
                p.add_(update, alpha=-group["lr"])
        return loss
