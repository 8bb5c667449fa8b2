"""GroupNorm (Wu & He 2018, arXiv 1803.08494).

Exact variant: the channels of each sample are split into ``num_groups`` contiguous
groups; each group is normalized by its own mean and biased variance (over the
group's channels and, for ``layout="nchw"``, all spatial positions), then a
per-channel affine map is applied. Per-sample statistics: no batch dependence, train
and eval identical.

Defaults: ``num_groups=None`` means the largest divisor of ``num_features`` that is at
most 32 (32 is the paper's default; 32 itself whenever it divides), ``eps=1e-5``,
``affine=True`` (weight 1, bias 0), ``layout="nc"`` ((N, C) or (N, ..., C): groups of
the last axis at each position). An explicit ``num_groups`` that does not divide
``num_features`` raises ValueError.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.normalization.layers._layout import check_input, check_layout
from normrl.normalization.registry import register_norm

DEFAULT_MAX_GROUPS = 32


def default_num_groups(num_features: int, max_groups: int = DEFAULT_MAX_GROUPS) -> int:
    """Largest divisor of ``num_features`` that is at most ``max_groups``."""
    return max(g for g in range(1, min(max_groups, num_features) + 1) if num_features % g == 0)


@register_norm("groupnorm", description="GroupNorm: per-sample statistics over groups of channels", paper="arXiv 1803.08494")
class GroupNorm(nn.Module):
    """GroupNorm with features-last or channels-first input.

    Args:
        num_features: number of channels.
        layout: ``"nc"`` [default] or ``"nchw"``.
        num_groups: number of groups, must divide ``num_features``
            [None: largest divisor of ``num_features`` that is <= 32].
        eps: added to the variance [1e-5].
        affine: learn per-channel ``weight`` (init 1) and ``bias`` (init 0) [True].
    """

    layouts = ("nc", "nchw")
    batch_dependent = False

    def __init__(self, num_features: int, *, layout: str = "nc", num_groups: int | None = None, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        if num_groups is None:
            num_groups = default_num_groups(self.num_features)
        if not isinstance(num_groups, int) or num_groups <= 0 or self.num_features % num_groups:
            divisors = [g for g in range(1, self.num_features + 1) if self.num_features % g == 0]
            raise ValueError(f"num_groups must be a positive divisor of num_features={self.num_features} (one of {divisors}), got {num_groups!r}")
        self.num_groups = num_groups
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(self.num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(self.num_features)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        if self.layout == "nchw":
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        shape = x.shape
        y = F.group_norm(x.reshape(-1, shape[-1]), self.num_groups, self.weight, self.bias, self.eps)
        return y.reshape(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, num_groups={self.num_groups}, eps={self.eps}, affine={self.weight is not None}"
