"""Continual Normalization (Pham, Liu & Hoi, ICLR 2022, arXiv 2203.16102).

Exact variant: ``CN(x) = BN(GN(x))`` — GroupNorm *without* affine parameters
(spatial/group normalization per sample), followed by BatchNorm with its affine
``weight``/``bias`` and running statistics. The GroupNorm removes each sample's
group statistics, so the BatchNorm's cross-task running statistics matter less,
which is the paper's remedy for BN's cross-task normalization effect in online
continual learning.

Defaults: ``num_groups=None`` (``"nchw"``: largest divisor of ``num_features`` that is
<= 32, the paper uses G=32 where it divides; ``"nc"``: 1 group), ``eps=1e-5`` for both, ``momentum=0.1``,
``affine=True``, ``layout="nc"``. Buffers: ``bn.running_mean``, ``bn.running_var``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers._layout import check_input, check_layout
from normrl.normalization.layers.batchnorm import BatchNorm
from normrl.normalization.layers.groupnorm import GroupNorm
from normrl.normalization.layers._scale_only import default_groups
from normrl.normalization.registry import register_norm


@register_norm("continual_norm", description="Continual Normalization: GroupNorm without affine, then BatchNorm", paper="arXiv 2203.16102")
class ContinualNorm(nn.Module):
    """GroupNorm (no affine) followed by BatchNorm (affine).

    Args:
        num_features: number of features/channels.
        layout: ``"nc"`` [default] or ``"nchw"``.
        num_groups: GroupNorm groups [None: ``"nchw"``: largest divisor <= 32; ``"nc"``: 1].
        eps: added to both variances [1e-5].
        momentum: BatchNorm running-statistics EMA factor [0.1].
        affine: BatchNorm ``weight``/``bias`` [True].
    """

    layouts = ("nc", "nchw")
    batch_dependent = True
    # The GroupNorm removes every per-sample shift and scale before the BatchNorm, so
    # train and eval outputs differ only by batch noise on a shifted batch.
    shift_invariant = True

    def __init__(self, num_features: int, *, layout: str = "nc", num_groups: int | None = None, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        self.gn = GroupNorm(self.num_features, layout=layout, num_groups=default_groups(self.num_features, layout) if num_groups is None else num_groups, eps=eps, affine=False)
        self.bn = BatchNorm(self.num_features, layout=layout, eps=eps, momentum=momentum, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        return self.bn(self.gn(x))

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}"
