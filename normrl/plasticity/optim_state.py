"""Zero the optimizer state of chosen slices of a parameter (the units a reset touched).

When ReDo or continual backprop re-initializes a unit, the optimizer still holds the old
unit's gradient statistics in the matching entries of its state: Adam's first moment
would push the fresh weights in the old direction, and a large stale second moment would
damp their first updates. :func:`zero_state_slices` zeroes exactly those entries: rows of
an incoming weight (``dim=0``), columns of an outgoing weight (``dim=1``), entries of a
bias or norm vector (``dim=0``), and nothing else.

What is zeroed: the element-wise accumulators that start at zero — ``exp_avg``,
``exp_avg_sq``, ``max_exp_avg_sq`` (Adam, AdamW, AMSGrad, NAdam, RAdam, normrl's AdamP),
``momentum_buffer`` (SGD, AdamP's SGDP), ``square_avg`` and ``grad_avg`` (RMSprop),
``exp_inf`` (Adamax), ``acc_delta`` (Adadelta). The indices are in the parameter's
logical shape (``(out, in, kh, kw)`` for a conv weight), so channels-last weights and
state tensors that follow the parameter's memory layout (torch's fused Adam) are indexed
correctly. Any other state tensor of the parameter's shape (an optimizer this module does
not know) is left alone with a one-time warning naming it.

Adam's ``step`` is **not** touched. torch's Adam/AdamW (foreach and fused) keep one step
count per tensor, used for the bias correction of every entry; zeroing it would restart
the bias correction of all the other, trained entries of the tensor (timoklein/redo does
this). So the reset entries continue with the tensor's step count ``t``: their first
update after a reset is ``lr·m/(√v + ε)`` with ``m = (1−β₁)g``, ``v = (1−β₂)g²``, i.e. about
``(1−β₁)/√(1−β₂) ≈ 3.2×`` Adam's first step for the default betas; with a constant
gradient the ratio ``(1−β₁ᵏ)/√(1−β₂ᵏ)`` peaks at about 6.6× at the 12th step and is back
to 1.26× after 1000 steps.
This is exactly what ReDo's reference implementation does (Dopamine
``labs/redo/weight_recyclers.py`` zeroes ``mu``/``nu`` and keeps optax's ``count``).
Continual backprop's code (``AdamGnT`` in shibhansh/loss-of-plasticity) instead keeps a
step count *per element* and zeroes it for the replaced weights, so their bias correction
starts over; torch's optimizers have no per-element step, so normrl zeroes the moments
only (see :mod:`normrl.plasticity.cbp`). With SGD (the optimizer of that paper's
supervised experiments) zeroing the momentum buffer is the whole state reset.
"""
from __future__ import annotations

import warnings

import torch
from torch.optim import Optimizer

__all__ = ["ZEROED_STATE_KEYS", "zero_state_slices"]

#: State entries that are element-wise accumulators starting at zero.
ZEROED_STATE_KEYS = frozenset({
    "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "grad_avg", "exp_inf", "acc_delta",
})

_warned: set[str] = set()


def zero_state_slices(optimizer: Optimizer, param: torch.Tensor, index: torch.Tensor, dim: int = 0) -> int:
    """Zero the optimizer state of ``param`` at positions ``index`` along ``dim``.

    Args:
        optimizer: any ``torch.optim.Optimizer``; a ``ProjectedOptimizer`` (NaP) works
            as is, its ``state`` is the inner optimizer's.
        param: a parameter the optimizer updates.
        index: 1-d integer tensor of positions along ``dim`` (on any device).
        dim: 0 for rows / vector entries, 1 for columns (input features or input
            channels of a conv weight).

    Returns the number of state tensors changed (0 when the parameter has no state yet,
    e.g. before the first step). Raises ``ValueError`` when ``param`` is not one of the
    optimizer's parameters or ``dim`` is out of range.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not any(p is param for group in optimizer.param_groups for p in group["params"]):
        raise ValueError(f"the parameter of shape {tuple(param.shape)} is not updated by this optimizer")
    if not -param.dim() <= dim < param.dim():
        raise ValueError(f"dim must be in [{-param.dim()}, {param.dim()}) for a parameter of shape {tuple(param.shape)}, got {dim}")
    state = optimizer.state.get(param)
    if not state:
        return 0
    changed = 0
    for key, value in state.items():
        if not torch.is_tensor(value) or value.shape != param.shape:
            continue
        if key in ZEROED_STATE_KEYS:
            value.index_fill_(dim, index.to(device=value.device), 0)
            changed += 1
        elif key not in _warned:
            _warned.add(key)
            warnings.warn(f"zero_state_slices: optimizer state {key!r} of {type(optimizer).__name__} is not a known "
                          f"zero-initialized accumulator and is left unchanged for reset units", stacklevel=2)
    return changed
