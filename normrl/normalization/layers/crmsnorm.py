"""Compressed RMSNorm, CRMSNorm (Jiang et al. 2023, "Pre-RMSNorm and Pre-CRMSNorm
Transformers: Equivalent and Efficient Pre-LN Transformers", arXiv 2305.14858).

When the main (residual) stream is kept zero-mean, one coordinate is redundant: a
zero-mean ``z`` in R^d is stored as its first ``d-1`` coordinates ``x``, and the last
one is recovered as ``z_d = -sum(x)``. CRMSNorm is RMSNorm of the decompressed ``z``
computed from ``x`` alone:

    CRMSNorm(x) = x / sqrt((sum_i x_i**2 + (sum_i x_i)**2) / d + eps),   d = len(x) + 1

so on a zero-mean stream it equals LayerNorm (= RMSNorm, since the mean is zero) of
the full vector, restricted to the stored ``d-1`` coordinates. The dropped ``d``-th
output coordinate is ``-sum`` of the others before the affine map; in the paper the
layer that consumes the output absorbs it (its weight column for ``z_d`` is
subtracted from the others).

Exact variant here: ``num_features`` is the number of *stored* coordinates ``d-1``;
input and output both have ``num_features`` features (the stored coordinates), then
``* weight + bias`` (the LayerNorm affine map restricted to those coordinates; the
paper folds it into the next layer instead, ``elementwise_affine=False`` gives that
form). On inputs that are not the compressed form of a zero-mean vector the layer is
still a scale-invariant normalization, just not a LayerNorm.

Defaults: ``eps=1e-5`` (LayerNorm's, so it matches ``layernorm`` to rounding),
``elementwise_affine=True`` (weight 1, bias 0), ``bias=True``, ``layout="nc"``;
``layout="nchw"`` applies it over the channels at each spatial position.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers._layout import check_input, check_layout, over_channels
from normrl.normalization.registry import register_norm


@register_norm("crmsnorm", description="Compressed RMSNorm: LayerNorm of a zero-mean stream stored in d-1 dims", paper="arXiv 2305.14858")
class CRMSNorm(nn.Module):
    """CRMSNorm over ``num_features = d - 1`` stored coordinates of a zero-mean
    ``d``-vector (see the module docstring for the formula).

    Args:
        num_features: number of stored coordinates (``d - 1``).
        layout: ``"nc"`` [default] or ``"nchw"``.
        eps: added to the mean square of the decompressed vector [1e-5].
        elementwise_affine: learn ``weight`` (init 1) [True].
        bias: learn ``bias`` (init 0) when affine [True].
    """

    layouts = ("nc", "nchw")
    batch_dependent = False

    def __init__(self, num_features: int, *, layout: str = "nc", eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(self.num_features)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(self.num_features)) if (elementwise_affine and bias) else None

    @staticmethod
    def compress(z: torch.Tensor) -> torch.Tensor:
        """Stored form of a zero-mean vector: its first ``d-1`` coordinates (last axis)."""
        return z[..., :-1]

    @staticmethod
    def decompress(x: torch.Tensor) -> torch.Tensor:
        """Zero-mean ``d``-vector from its stored ``d-1`` coordinates: appends ``-sum(x)``."""
        return torch.cat([x, -x.sum(dim=-1, keepdim=True)], dim=-1)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        d = self.num_features + 1
        mean_sq = (xf.square().sum(-1, keepdim=True) + xf.sum(-1, keepdim=True).square()) / d
        y = (xf * torch.rsqrt(mean_sq + self.eps)).to(x.dtype)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        return over_channels(x, self.layout, self._norm)

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, eps={self.eps}, affine={self.weight is not None}"
