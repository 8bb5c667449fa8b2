"""The Nature DQN network (Mnih et al. 2015, "Human-level control through deep
reinforcement learning", Nature 518) with an optional norm after every hidden layer."""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.networks.blocks import check_positive, make_activation, resolve_norm, width_multiplier
from normrl.networks.input_cast import InputCast
from normrl.normalization.registry import NormSpec

#: (out_channels, kernel, stride) of the three conv layers.
CONV_SPEC = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
FEATURES_DIM = 512


class NatureCNN(nn.Sequential):
    """Conv 32 8x8/4 -> Conv 64 4x4/2 -> Conv 64 3x3/1 -> Linear 512 -> output.

    Each hidden layer is ``layer -> Norm -> activation``; conv norms are built with
    ``layout="nchw"`` (for the LayerNorm family: normalization over the channels at
    each position). With ``norm=None`` no norm module is inserted. With a NaP norm
    (``norm="nap"``) every hidden conv/Linear has ``bias=False``; the output layer
    keeps its bias.

    Input: (N, C, H, W) with ``input_size=(H, W)`` [(84, 84)]. ``uint8`` input is
    cast to float and divided by 255 inside the network; float input is used as
    is (so already-scaled frames are not scaled twice).

    Args:
        in_channels: stacked frames / channels.
        out_dim: outputs; ``None`` gives the torso only (``features_dim = 512``).
        norm: registered norm name, class, partial, or None [None].
        activation: hidden nonlinearity name [``"relu"``].
        input_size: spatial input size, used to size the Linear layer [(84, 84)].
        norm_kwargs: extra keywords for every norm layer [None].
        channels_last: keep the conv weights and the input in channels-last (NHWC)
            memory. oneDNN's CPU convolutions are faster on it: with fused Adam, a
            batch-32 DQN update takes 24 ms instead of 29 ms on one core
            (docs/benchmarks.md). The values computed are the same up to float
            rounding and ``state_dict`` keys and shapes do not change, but some
            initializers (``torch.nn.init.orthogonal_``, which SB3 applies) need
            contiguous weights: initialize first, then call
            ``.to(memory_format=torch.channels_last)``. normrl's agents build it with
            True [False].

    Attributes:
        features_dim: 512, the torso's output size (1024 with ``activation="crelu"``).
        out_features: ``out_dim`` or ``features_dim``.
    """

    def __init__(
        self,
        in_channels: int,
        out_dim: int | None,
        norm: NormSpec = None,
        activation: str = "relu",
        *,
        input_size: tuple[int, int] = (84, 84),
        norm_kwargs: dict | None = None,
        channels_last: bool = False,
    ):
        check_positive("in_channels", in_channels)
        if out_dim is not None:
            check_positive("out_dim", out_dim)
        make_activation(activation)
        norm_ctor, nap = resolve_norm(norm)
        kw = dict(norm_kwargs or {})
        layers: list[nn.Module] = [InputCast(uint8_scale=255.0)]
        channels, (h, w) = in_channels, input_size
        mult = width_multiplier(activation)
        for out_channels, kernel, stride in CONV_SPEC:
            layers.append(nn.Conv2d(channels, out_channels, kernel, stride, bias=not nap))
            if norm_ctor is not None:
                layers.append(norm_ctor(out_channels, layout="nchw", **kw))
            layers.append(make_activation(activation))
            channels = out_channels * mult
            h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
            if h <= 0 or w <= 0:
                raise ValueError(f"input_size {tuple(input_size)} is too small for the Nature CNN (needs at least 36x36)")
        layers.append(nn.Flatten())
        layers.append(nn.Linear(channels * h * w, FEATURES_DIM, bias=not nap))
        if norm_ctor is not None:
            layers.append(norm_ctor(FEATURES_DIM, **kw))
        layers.append(make_activation(activation))
        if out_dim is not None:
            layers.append(nn.Linear(FEATURES_DIM * mult, out_dim))
        super().__init__(*layers)
        self.features_dim = FEATURES_DIM * mult
        self.out_features = out_dim if out_dim is not None else self.features_dim
        self.nap = nap
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and self[1].weight.is_contiguous(memory_format=torch.channels_last):
            # the input follows the weights' layout, so a net converted after
            # construction runs channels-last too
            x = x.contiguous(memory_format=torch.channels_last)
        return super().forward(x)
