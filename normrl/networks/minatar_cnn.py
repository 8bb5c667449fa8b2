"""The MinAtar network (Young & Tian 2019, "MinAtar: An Atari-Inspired Testbed for
Thorough and Reproducible Reinforcement Learning Experiments", arXiv 1903.03176)."""
from __future__ import annotations

import torch.nn as nn

from normrl.networks.blocks import check_positive, resolve_norm
from normrl.networks.input_cast import InputCast
from normrl.normalization.registry import NormSpec

CONV_CHANNELS = 16
HIDDEN = 128
GRID = 10


class MinAtarCNN(nn.Sequential):
    """Conv 16 3x3 stride 1 (no padding: 10x10 -> 8x8) -> ReLU -> Linear 128 -> ReLU
    -> Linear ``out_dim``, the network of the MinAtar paper's DQN/AC baselines.

    With a norm, each hidden layer becomes ``layer -> Norm -> ReLU`` (the conv norm in
    ``layout="nchw"``); with a NaP norm the conv and hidden Linear have no bias. Input
    (N, C, 10, 10) of any dtype (MinAtar's boolean grids are cast to float, values
    0/1, no scaling).

    Parameter count without norm: ``16·9·C + 16 + 1024·128 + 128 + 128·A + A``.

    Args:
        in_channels: number of object channels ``C`` of the game.
        out_dim: outputs ``A``; ``None`` gives the torso only (``features_dim = 128``).
        norm: registered norm name, class, partial, or None [None].
        norm_kwargs: extra keywords for every norm layer [None].
    """

    def __init__(self, in_channels: int, out_dim: int | None, norm: NormSpec = None, *, norm_kwargs: dict | None = None):
        check_positive("in_channels", in_channels)
        if out_dim is not None:
            check_positive("out_dim", out_dim)
        norm_ctor, nap = resolve_norm(norm)
        kw = dict(norm_kwargs or {})
        layers: list[nn.Module] = [InputCast(), nn.Conv2d(in_channels, CONV_CHANNELS, 3, 1, bias=not nap)]
        if norm_ctor is not None:
            layers.append(norm_ctor(CONV_CHANNELS, layout="nchw", **kw))
        layers += [nn.ReLU(), nn.Flatten(), nn.Linear(CONV_CHANNELS * (GRID - 2) ** 2, HIDDEN, bias=not nap)]
        if norm_ctor is not None:
            layers.append(norm_ctor(HIDDEN, **kw))
        layers.append(nn.ReLU())
        if out_dim is not None:
            layers.append(nn.Linear(HIDDEN, out_dim))
        super().__init__(*layers)
        self.features_dim = HIDDEN
        self.out_features = out_dim if out_dim is not None else HIDDEN
        self.nap = nap
