"""Batch-Channel Normalization (Qiao et al. 2019, arXiv 1903.10520).

Exact variant: the large-batch form of the paper, ``BCN(x) = GN(BN(x))`` — BatchNorm
with affine parameters and running statistics (batch knowledge), then a channel-based
normalization, GroupNorm with its own affine parameters. The paper's micro-batch
variant, which replaces the BatchNorm batch statistics by estimated ones during
training, is not implemented. Use it with weight-standardized convolutions
(:class:`normrl.normalization.ws_conv.WSConv2d`; ``ResNet18(norm="bcn")`` does so
by default).

Defaults: ``num_groups=None`` (``"nchw"``: largest divisor of ``num_features`` that is
<= min(32, num_features // 2), so every group has two or more channels, the paper uses
32 groups; ``"nc"``: 1 group), ``eps=1e-5``, ``momentum=0.1``, ``affine=True``, ``layout="nc"``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers._layout import check_input, check_layout
from normrl.normalization.layers.batchnorm import BatchNorm
from normrl.normalization.layers.groupnorm import GroupNorm
from normrl.normalization.layers._scale_only import default_multi_channel_groups
from normrl.normalization.registry import register_norm


@register_norm("bcn", description="Batch-Channel Normalization: BatchNorm then GroupNorm (pair with WSConv2d)", paper="arXiv 1903.10520")
class BatchChannelNorm(nn.Module):
    """BatchNorm (affine) followed by GroupNorm (affine).

    Args:
        num_features: number of features/channels.
        layout: ``"nc"`` [default] or ``"nchw"``.
        num_groups: GroupNorm groups [None: ``"nchw"``: largest divisor <= min(32, C // 2); ``"nc"``: 1].
        eps: added to both variances [1e-5].
        momentum: BatchNorm running-statistics EMA factor [0.1].
        affine: affine parameters of both stages [True].
    """

    layouts = ("nc", "nchw")
    batch_dependent = True
    weight_standardization = True  # networks pair this norm with WSConv2d

    def __init__(self, num_features: int, *, layout: str = "nc", num_groups: int | None = None, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        self.bn = BatchNorm(self.num_features, layout=layout, eps=eps, momentum=momentum, affine=affine)
        self.gn = GroupNorm(self.num_features, layout=layout, num_groups=default_multi_channel_groups(self.num_features, layout) if num_groups is None else num_groups, eps=eps, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        return self.gn(self.bn(x))

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}"
