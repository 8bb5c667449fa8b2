"""Weight-standardized convolution (Qiao et al. 2019, arXiv 1903.10520).

Exact variant (the paper's Eq. 5-6): before every convolution each output filter is
standardized over its fan-in, ``Ŵ = (W − mean(W)) / sqrt(var(W) + eps)`` with the mean
and *biased* variance over (in_channels/groups, kh, kw); the stored parameter stays
``W``. Pair it with the ``bcn`` norm (Batch-Channel Normalization), as in the paper.

Defaults: those of :class:`torch.nn.Conv2d`, plus ``eps=1e-5``.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def standardize_weight(weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-output-filter standardization of a conv weight (out, in, kh, kw)."""
    flat = weight.flatten(1)
    var, mean = torch.var_mean(flat, dim=1, correction=0, keepdim=True)
    return ((flat - mean) * torch.rsqrt(var + eps)).view_as(weight)


class WSConv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` whose filters are standardized at every forward.

    Args: those of ``nn.Conv2d`` (positional ``in_channels, out_channels, kernel_size``),
    plus ``eps`` added to the filter variance [1e-5].
    """

    def __init__(self, *args, eps: float = 1e-5, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, standardize_weight(self.weight, self.eps), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
