"""BatchNorm (Ioffe & Szegedy 2015, arXiv 1502.03167).

Exact variant: torch's batch normalization. Training: normalize with the batch mean
and biased batch variance per feature/channel, update ``running_mean`` /
``running_var`` (unbiased variance) by an exponential moving average with
``momentum``. Eval: normalize with the running statistics. The statistic buffers are
named ``running_*`` so Stable-Baselines3's DQN copies them to the target network.

Layouts: ``"nc"`` takes (N, C) or (N, ..., C) and pools statistics over every axis
but the last (BatchNorm1d semantics on the flattened (N·..., C) view);
``"nchw"`` is BatchNorm2d (statistics over N, H, W per channel).

Defaults: ``eps=1e-5``, ``momentum=0.1``, ``affine=True`` (weight 1, bias 0),
``track_running_stats=True``, ``layout="nc"``.
"""
from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from normrl.normalization.layers._layout import check_input, check_layout
from normrl.normalization.registry import register_norm


@register_norm("batchnorm", description="BatchNorm: batch statistics in training, running statistics in eval", paper="arXiv 1502.03167")
class BatchNorm(_BatchNorm):
    """BatchNorm for features-last (``"nc"``) or channels-first image (``"nchw"``) input.

    Args:
        num_features: number of features/channels.
        layout: ``"nc"`` [default] or ``"nchw"``.
        eps: added to the variance [1e-5].
        momentum: EMA factor of the running statistics [0.1].
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) [True].
        track_running_stats: keep ``running_mean``/``running_var`` for eval [True].
    """

    layouts = ("nc", "nchw")
    batch_dependent = True

    def __init__(self, num_features: int, *, layout: str = "nc", eps: float = 1e-5, momentum: float = 0.1, affine: bool = True, track_running_stats: bool = True):
        self.layout = check_layout(type(self), layout)
        super().__init__(int(num_features), eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        # _BatchNorm.forward calls this; forward below has already run check_input.
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        if self.layout == "nchw" or x.dim() == 2:
            return super().forward(x)
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layout={self.layout!r}"
