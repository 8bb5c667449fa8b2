"""LayerNorm (Ba, Kiros & Hinton 2016, arXiv 1607.06450).

Exact variant: ``y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias`` with the
mean and the biased variance taken over the feature axis of each sample (no batch
statistics, so train and eval behave identically).

Defaults: ``eps=1e-5``, ``elementwise_affine=True`` (``weight`` initialized to ones),
``bias=True`` (initialized to zeros), ``layout="nc"``.

Layouts: ``"nc"`` normalizes the last axis of (N, C) or (N, ..., C);
``"nchw"`` normalizes over the channels at each spatial position of (N, C, H, W),
the convention of flax and of Normalize-and-Project for conv layers (not over
C×H×W as ``torch.nn.LayerNorm([C, H, W])`` would).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.normalization.layers._layout import check_input, check_layout, over_channels
from normrl.normalization.registry import register_norm


@register_norm("layernorm", description="LayerNorm over the feature/channel axis, affine", paper="arXiv 1607.06450")
class LayerNorm(nn.Module):
    """LayerNorm over the feature axis (``layout="nc"``) or the channel axis at each
    position (``layout="nchw"``).

    Args:
        num_features: size of the normalized axis.
        layout: ``"nc"`` [default] or ``"nchw"``.
        eps: added to the variance [1e-5].
        elementwise_affine: learn a per-feature gain ``weight`` (init 1) [True].
        bias: learn a per-feature offset ``bias`` (init 0) when affine [True].
    """

    layouts = ("nc", "nchw")
    batch_dependent = False

    def __init__(self, num_features: int, *, layout: str = "nc", eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        self.eps = float(eps)
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.num_features))
            self.bias = nn.Parameter(torch.zeros(self.num_features)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        return over_channels(x, self.layout, lambda t: F.layer_norm(t, (self.num_features,), self.weight, self.bias, self.eps))

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, eps={self.eps}, affine={self.weight is not None}"
