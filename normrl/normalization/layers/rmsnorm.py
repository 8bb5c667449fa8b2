"""RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization",
arXiv 1910.07467).

Exact variant: ``y = x / sqrt(mean(x**2) + eps) * weight`` over the feature axis
(no re-centering, no mean subtraction), optionally ``+ bias``. The paper's
partial-RMSNorm (pRMSNorm, statistics from the first p% of features) is not
implemented. ``eps`` is added inside the square root, as in ``torch.nn.RMSNorm``.

Defaults: ``eps=1e-6``, ``elementwise_affine=True`` (``weight`` = ones),
``bias=False`` (the paper's RMSNorm has no offset), ``layout="nc"``.
``layout="nchw"`` normalizes over the channels at each spatial position.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.normalization.layers._layout import check_input, check_layout, over_channels
from normrl.normalization.registry import register_norm


@register_norm("rmsnorm", description="RMSNorm: x / RMS(x) * g, no re-centering", paper="arXiv 1910.07467")
class RMSNorm(nn.Module):
    """Root-mean-square normalization over the feature (or channel) axis.

    Args:
        num_features: size of the normalized axis.
        layout: ``"nc"`` [default] or ``"nchw"``.
        eps: added to the mean square [1e-6].
        elementwise_affine: learn a per-feature gain ``weight`` (init 1) [True].
        bias: also learn an offset ``bias`` (init 0) [False].
    """

    layouts = ("nc", "nchw")
    batch_dependent = False

    def __init__(self, num_features: int, *, layout: str = "nc", eps: float = 1e-6, elementwise_affine: bool = True, bias: bool = False):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(self.num_features)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(self.num_features)) if (elementwise_affine and bias) else None

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        y = F.rms_norm(x, (self.num_features,), self.weight, self.eps)
        return y if self.bias is None else y + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        return over_channels(x, self.layout, self._norm)

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, eps={self.eps}, affine={self.weight is not None}, bias={self.bias is not None}"
