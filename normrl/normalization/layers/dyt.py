"""Dynamic Tanh, DyT (Zhu, Chen, He, LeCun & Liu 2025, "Transformers without
Normalization", arXiv 2503.10622).

Exact variant: ``y = weight * tanh(alpha * x) + bias`` with one learnable scalar
``alpha`` per layer and per-channel ``weight`` (gamma) and ``bias`` (beta). No
statistics are computed: DyT is an element-wise replacement for a norm layer, not a
normalization (the map is not scale-invariant, so NaP does not treat it as a norm).

Defaults: ``alpha_init=0.5`` (the paper's default for non-LLM models),
``weight`` = ones, ``bias`` = zeros, ``layout="nc"``; ``layout="nchw"`` applies the
per-channel gain/offset along axis 1 (the paper's ConvNet form).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers._layout import channel_shape, check_input, check_layout
from normrl.normalization.registry import register_norm


@register_norm("dyt", description="Dynamic Tanh: gamma * tanh(alpha x) + beta, a norm-free replacement", paper="arXiv 2503.10622")
class DyT(nn.Module):
    """Dynamic Tanh ``weight * tanh(alpha * x) + bias``.

    Args:
        num_features: number of channels of ``weight``/``bias``.
        layout: ``"nc"`` [default] or ``"nchw"``.
        alpha_init: initial value of the scalar ``alpha`` [0.5].
    """

    layouts = ("nc", "nchw")
    batch_dependent = False

    def __init__(self, num_features: int, *, layout: str = "nc", alpha_init: float = 0.5):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        self.alpha_init = float(alpha_init)
        self.alpha = nn.Parameter(torch.full((1,), self.alpha_init))
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        shape = channel_shape(x, self.layout)
        return torch.addcmul(self.bias.view(shape), self.weight.view(shape), torch.tanh(self.alpha * x))

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, alpha_init={self.alpha_init}"
