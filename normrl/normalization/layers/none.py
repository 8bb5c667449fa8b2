"""The identity "norm": ``norm="none"`` (or ``norm=None``) means no normalization.

Accepts the feature count and ``layout`` like every registered norm so networks can
build it uniformly; it has no parameters and returns its input unchanged.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers._layout import check_layout
from normrl.normalization.registry import register_norm


@register_norm("none", description="identity: no normalization")
class NoNorm(nn.Module):
    """Identity layer taking ``num_features`` (ignored) and ``layout`` (``"nc"`` or ``"nchw"``).

    Unlike every other registered norm it does not check its input's shape against
    ``layout`` and ``num_features`` (``check_input``): it reads neither, so no input is
    wrong for it, and ``norm="none"`` baselines keep a forward that costs nothing."""

    layouts = ("nc", "nchw")
    batch_dependent = False

    def __init__(self, num_features: int, *, layout: str = "nc"):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}"
