"""EvoNorm-B0 and EvoNorm-S0 (Liu, Brock, Simonyan & Le, NeurIPS 2020, arXiv 2004.02967).

Exact variants (the paper's Table 1 / Fig. 1 formulas, v initialized to ones, γ to ones,
β to zeros):

* **B0** (batch-dependent): ``y = x / max(sqrt(σ²_batch + eps), v·x + sqrt(σ²_inst + eps)) · γ + β``,
  σ²_batch the biased per-channel variance over (N, H, W) in training and the running
  variance (EMA with ``momentum``, of the biased batch variance) in eval; σ²_inst the
  biased variance of each sample's channel over (H, W). Layout ``"nchw"`` only: the
  instance variance needs spatial positions.
* **S0** (per-sample): ``y = x · sigmoid(v·x) / sqrt(σ²_group + eps) · γ + β``, σ²_group
  the biased variance over each group of channels (and, for ``"nchw"``, all spatial
  positions). Layouts ``"nc"`` ((N, ..., C): groups of the last axis at each position)
  and ``"nchw"``.

Defaults: ``eps=1e-5``; B0 ``momentum=0.1``; S0 ``num_groups=None`` (``"nchw"``: largest
divisor of ``num_features`` <= 32, the paper uses 32 groups; ``"nc"``: 1 group).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers._layout import channel_shape, check_input, check_layout
from normrl.normalization.layers._scale_only import default_groups
from normrl.normalization.registry import register_norm


@register_norm("evonorm_b0", description="EvoNorm-B0: x / max(batch std, v*x + instance std), affine", paper="arXiv 2004.02967")
class EvoNormB0(nn.Module):
    """EvoNorm-B0 for (N, C, H, W) input.

    Args:
        num_features: number of channels.
        layout: ``"nchw"`` [default; the only one].
        eps: added to both variances [1e-5].
        momentum: EMA factor of ``running_var`` [0.1].
    """

    layouts = ("nchw",)
    batch_dependent = True

    def __init__(self, num_features: int, *, layout: str = "nchw", eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))
        self.v = nn.Parameter(torch.ones(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        shape = channel_shape(x, "nchw")
        if self.training:
            batch_var = x.var(dim=(0, 2, 3), unbiased=False)
            with torch.no_grad():
                self.running_var.lerp_(batch_var.detach().to(self.running_var.dtype), self.momentum)
        else:
            batch_var = self.running_var
        inst_var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        denom = torch.maximum(torch.sqrt(batch_var.view(shape) + self.eps), self.v.view(shape) * x + torch.sqrt(inst_var + self.eps))
        return x / denom * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, eps={self.eps}, momentum={self.momentum}"


@register_norm("evonorm_s0", description="EvoNorm-S0: x * sigmoid(v*x) / group std, affine", paper="arXiv 2004.02967")
class EvoNormS0(nn.Module):
    """EvoNorm-S0 (no batch statistics).

    Args:
        num_features: number of features/channels.
        layout: ``"nc"`` [default] or ``"nchw"``.
        num_groups: groups of channels [None: ``"nchw"``: largest divisor <= 32; ``"nc"``: 1].
        eps: added to the group variance [1e-5].
    """

    layouts = ("nc", "nchw")
    batch_dependent = False

    def __init__(self, num_features: int, *, layout: str = "nc", num_groups: int | None = None, eps: float = 1e-5):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        if num_groups is None:
            num_groups = default_groups(self.num_features, layout)
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups <= 0 or self.num_features % num_groups:
            raise ValueError(f"num_groups must be a positive divisor of num_features={self.num_features}, got {num_groups!r}")
        self.num_groups = num_groups
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))
        self.v = nn.Parameter(torch.ones(self.num_features))

    def _grouped(self, t: torch.Tensor) -> torch.Tensor:
        """View of ``t`` with one axis per group: (N, G, C/G·H·W) or (..., G, C/G)."""
        if self.layout == "nchw":
            return t.reshape(t.shape[0], self.num_groups, -1)
        return t.reshape(*t.shape[:-1], self.num_groups, self.num_features // self.num_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        shape = channel_shape(x, self.layout)
        num = x * torch.sigmoid(self.v.view(shape) * x)
        var = self._grouped(x).var(dim=-1, unbiased=False, keepdim=True)
        y = (self._grouped(num) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        return y * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, num_groups={self.num_groups}, eps={self.eps}"
