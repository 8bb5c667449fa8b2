"""Parseval regularization (Chung, Cherif, Precup & Meger 2024, "Parseval Regularization
for Continual Reinforcement Learning", arXiv 2412.07224).

Exact variant: the penalty ``Σ_l c_l·‖W_l W_lᵀ − s_l·I‖²_F`` over the **hidden** weight
layers (every Linear/Conv except the output layers, :mod:`normrl.plasticity.layers`;
frozen layers skipped), a conv weight flattened to ``(out, in·k·k)``. It pulls the rows
of each weight matrix towards an orthogonal set of norm ``√s_l``.

* ``c_l = lam·(width_ref / rows_l)²`` with ``width_ref=64``: the official code
  (``wechu/parseval_reg``, ``agent.py``) multiplies λ by ``(64 / net_width)²`` because λ
  was tuned at width 64; ``width_ref=0`` gives ``c_l = lam``.
* ``lam=1e-3``: the official default for the gridworld and MetaWorld runs (``main.py``;
  1e-4 on LunarLander and the quadruped).
* ``s``: the official code uses ``s = gain²`` of its orthogonal initialization (2 for
  gain √2), i.e. the squared row norm the network starts with. normrl's layers keep
  PyTorch's default initialization (row norm² ≈ 1/3), so the default ``s="init"``
  keeps that meaning: ``s_l`` = the mean squared row norm of ``W_l`` at ``attach``
  (exactly ``gain²`` for an orthogonal init with ``rows ≤ cols``); a number sets ``s``
  for every layer.

Plasticine difference: its ``PRLinear`` (``plasticine/utils.py``: ``lambda_reg=1e-3``,
``s=1.0``) is used for one layer only, the encoder's fully connected layer
(``plasticine/c51_atari_base.py``), with PyTorch's default initialization, whose squared
row norm (about 1/3) is far from ``s = 1``: the penalty first rescales the layer instead
of only orthogonalizing it.
"""
from __future__ import annotations

from typing import Union

import torch
import torch.nn as nn

from normrl.plasticity.base import STAGE_PENALTY, Intervention
from normrl.plasticity.layers import hidden_weight_layers
from normrl.plasticity.registry import register_intervention

__all__ = ["Parseval", "parseval_penalty"]


def parseval_penalty(weight: torch.Tensor, s: float) -> torch.Tensor:
    """``‖W Wᵀ − s·I‖²_F`` with ``W`` = ``weight`` flattened to ``(rows, -1)``."""
    w = weight.flatten(1)
    gram = w @ w.T
    eye = torch.eye(w.shape[0], device=w.device, dtype=w.dtype)
    return (gram - s * eye).square().sum()


class _ParsevalSum(torch.autograd.Function):
    """``Σ_l c_l·‖W_l W_lᵀ − s_l I‖²_F`` with the closed-form backward
    ``4·c_l·(W_l W_lᵀ − s_l I)·W_l`` (fewer autograd nodes on every update). Not twice
    differentiable (``once_differentiable``)."""

    @staticmethod
    def forward(ctx, coeffs, targets, *weights):
        total = weights[0].new_zeros(())
        residuals = []
        for w, c, s in zip(weights, coeffs, targets):
            flat = w.flatten(1)
            r = flat @ flat.T
            r.diagonal().sub_(s)
            residuals.append(r)
            total = total + c * r.square().sum()
        ctx.coeffs = coeffs
        ctx.save_for_backward(*weights, *residuals)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        n = len(saved) // 2
        grads = [((4.0 * c) * grad * (r @ w.flatten(1))).view_as(w) for w, r, c in zip(saved[:n], saved[n:], ctx.coeffs)]
        return (None, None, *grads)


@register_intervention("parseval", paper="Chung et al. 2024, arXiv 2412.07224", description="penalty λ(64/width)²‖WWᵀ − sI‖²_F on hidden layers, s = initial squared row norm")
class Parseval(Intervention):
    """Parseval regularization of the hidden weight layers (module docstring).

    Args:
        lam: λ [1e-3].
        s: target squared row norm, ``"init"`` (per layer, from the weights at attach) or
            a number [``"init"``].
        width_ref: λ is scaled by ``(width_ref / rows)²`` per layer; 0 disables [64].
    """

    order = STAGE_PENALTY
    per_step = True

    def __init__(self, lam: float = 1e-3, s: Union[str, float] = "init", width_ref: int = 64) -> None:
        super().__init__()
        if not float(lam) >= 0.0:
            raise ValueError(f"lam must be >= 0, got {lam!r}")
        if isinstance(s, str):
            if s != "init":
                raise ValueError(f"s must be 'init' or a positive number, got {s!r}")
        elif not float(s) > 0.0:
            raise ValueError(f"s must be 'init' or a positive number, got {s!r}")
        if not isinstance(width_ref, int) or isinstance(width_ref, bool) or width_ref < 0:
            raise ValueError(f"width_ref must be a non-negative int, got {width_ref!r}")
        self.lam = float(lam)
        self.s = s if isinstance(s, str) else float(s)
        self.width_ref = width_ref
        self._layers: list[tuple[str, nn.Module]] = []
        self._targets: dict[int, float] = {}

    def attach(self, model, optimizer) -> None:
        super().attach(model, optimizer)
        self._targets = {}
        self._refresh()

    def on_structure_change(self) -> None:
        self._refresh()

    @torch.no_grad()
    def _refresh(self) -> None:
        self._layers = [(n, m) for n, m in hidden_weight_layers(self._require_attached()) if m.weight.requires_grad]
        for _, m in self._layers:
            if id(m.weight) not in self._targets:
                w = m.weight.flatten(1)
                self._targets[id(m.weight)] = float(w.square().sum() / w.shape[0]) if self.s == "init" else self.s

    @property
    def targets(self) -> dict[str, float]:
        """``s_l`` by layer name."""
        return {n: self._targets[id(m.weight)] for n, m in self._layers}

    def coefficient(self, rows: int) -> float:
        """``c_l`` for a layer with ``rows`` output units."""
        return self.lam * (self.width_ref / rows) ** 2 if self.width_ref else self.lam

    def penalty(self) -> torch.Tensor:
        if not self._layers or self.lam == 0.0:
            return self._zero()
        weights = [m.weight for _, m in self._layers]
        coeffs = [self.coefficient(w.shape[0]) for w in weights]
        targets = [self._targets[id(w)] for w in weights]
        return _ParsevalSum.apply(coeffs, targets, *weights)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["targets"] = dict(self.targets)
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        saved = state["targets"]
        names = dict(self._layers)
        if set(saved) != set(names):
            raise ValueError(f"parseval state covers layers {sorted(saved)}, this model's hidden layers are {sorted(names)}")
        for name, value in saved.items():
            self._targets[id(names[name].weight)] = float(value)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, s={self.s!r}, width_ref={self.width_ref}"
