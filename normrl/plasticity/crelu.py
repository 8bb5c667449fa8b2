"""Concatenated ReLU (Shang, Sohn, Almeida & Lee, ICML 2016, arXiv 1603.05201), as a
plasticity method (Abbas, Zhao, Modayil, White & Machado, CoLLAs 2023, "Loss of
Plasticity in Continual Deep Reinforcement Learning", arXiv 2303.07507).

``CReLU(x) = concat(ReLU(x), ReLU(−x))`` along the feature dimension: every pre-activation
unit yields two outputs, one of which is always active (unless x = 0), so no unit can
go dormant for all inputs. The layer after a CReLU sees twice the features
(``width_multiplier = 2``).

CReLU is an *architecture* choice, not an intervention: it has no effect at training
time beyond the forward pass, so it is not in the intervention registry; a network is
built with it (the lead wires ``activation="crelu"`` into :mod:`normrl.networks`). The
width rule says which hidden widths to use (:func:`crelu_hidden_widths`):

* ``"equal_params"`` (default): scale every hidden width by one common factor, rounded,
  so that the parameter count is the closest to the ReLU network's (ties: the larger
  count). Kumar et al. 2023 (arXiv 2308.11958, A.1.3) keep the count equal in the same
  spirit (they shrink the width by the smallest fraction keeping it ≥ the baseline);
* ``"equal_width"``: the same hidden widths, so the layer after each CReLU has twice
  the fan-in (about 2× the parameters; Plasticine's choice, ``plasticine/utils.py``
  ``CReLU4Linear``).

Pitfall for unit-level methods (ReDo, CBP, dormant ratios): a CReLU pair comes from one
pre-activation unit, so resets and scores must treat the pair as one unit.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["CReLU", "crelu_hidden_widths", "mlp_param_count", "WIDTH_RULES"]

#: Valid width rules of :func:`crelu_hidden_widths`.
WIDTH_RULES = ("equal_params", "equal_width")


class CReLU(nn.Module):
    """``concat(relu(x), relu(−x), dim)`` (Shang et al. 2016; as a plasticity method,
    Abbas et al. 2023, arXiv 2303.07507). ``dim=1`` is the feature axis of (N, C) and
    NCHW inputs; use ``dim=-1`` for channels-last (N, ..., C).

    Attributes:
        width_multiplier: 2 (outputs per input feature).
    """

    width_multiplier = 2

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((torch.relu(x), torch.relu(-x)), dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def mlp_param_count(in_dim: int, hidden: Sequence[int], out_dim: int, *, crelu: bool = False, bias: bool = True) -> int:
    """Parameters (weights and biases) of ``Linear`` layers ``in_dim → hidden… → out_dim``
    with a ReLU (``crelu=False``) or CReLU (``crelu=True``: the next layer's fan-in is
    doubled) after every hidden layer. Norm layers are not counted."""
    mult = 2 if crelu else 1
    total, fan_in = 0, in_dim
    for width in list(hidden) + [out_dim]:
        total += fan_in * width + (width if bias else 0)
        fan_in = width * mult
    return total


def crelu_hidden_widths(hidden: Sequence[int], rule: str = "equal_params", *, in_dim: int, out_dim: int, bias: bool = True) -> tuple[int, ...]:
    """Hidden widths of a CReLU MLP matching the ReLU MLP ``in_dim → hidden → out_dim``.

    ``rule="equal_params"``: widths ``round(c·h)`` for one common factor ``c`` chosen so
    that :func:`mlp_param_count` with ``crelu=True`` is the closest integer count to
    the ReLU network's (ties: the larger count; every width ≥ 1). ``rule="equal_width"``:
    ``hidden`` unchanged. Example: (64, 64) with in 4, out 2 → (46, 46) (4,694 vs 4,610
    parameters).
    """
    hidden = tuple(int(h) for h in hidden)
    if not hidden or any(h < 1 for h in hidden):
        raise ValueError(f"hidden must be a non-empty sequence of positive widths, got {hidden!r}")
    for name, value in (("in_dim", in_dim), ("out_dim", out_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if rule == "equal_width":
        return hidden
    if rule != "equal_params":
        raise ValueError(f"rule must be one of {WIDTH_RULES}, got {rule!r}")
    target = mlp_param_count(in_dim, hidden, out_dim, bias=bias)
    # round(c·h) is constant between consecutive breakpoints c = (j + ½)/h_i, so the
    # midpoints between breakpoints enumerate every vector with c in (0, 1].
    cuts = sorted({(j + 0.5) / hi for hi in hidden for j in range(hi)} | {1.0})
    points = [cuts[0] / 2] + [(a + b) / 2 for a, b in zip(cuts, cuts[1:])] + [1.0]
    candidates = {tuple(max(1, int(c * h + 0.5)) for h in hidden) for c in points if c <= 1.0}
    def key(widths):
        count = mlp_param_count(in_dim, widths, out_dim, crelu=True, bias=bias)
        return (abs(count - target), -count)
    return min(sorted(candidates), key=key)
