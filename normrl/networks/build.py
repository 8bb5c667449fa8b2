"""A default network for an observation space: what the agents build when given none."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch.nn as nn


def uint8_scale(space: gym.spaces.Box) -> float:
    """255 for uint8 spaces bounded by 255 (Atari frames), else 1."""
    if space.dtype == np.uint8 and np.all(space.high == 255):
        return 255.0
    return 1.0


def build_network(obs_space: gym.Space, out_dim: int, norm: Any = "none", hidden: tuple[int, ...] = (64, 64),
                  activation: str = "relu") -> nn.Module:
    """A network from observations to ``out_dim`` outputs, chosen by observation shape.

    * ``(D,)`` vectors: ``nn.Sequential(InputCast(), MLP(D, out_dim, hidden, norm,
      activation))`` (the cast accepts bool, integer and float64 observations);
    * ``(C, 10, 10)`` MinAtar grids: ``MinAtarCNN(C, out_dim, norm)`` (``hidden`` and
      ``activation`` unused: the MinAtar paper's network);
    * ``(C, H, W)`` other images (Atari 84x84): ``NatureCNN(C, out_dim, norm,
      channels_last=True)`` (ReLU, the Nature network's; ``hidden`` and ``activation``
      unused; oneDNN's convolutions are faster channels-last on CPU).

    The CNNs cast their input themselves (:class:`~normrl.networks.InputCast`), so any
    observation dtype is accepted. Other shapes raise ValueError: pass ``network=`` to
    the agent then.
    """
    from normrl.networks.input_cast import InputCast
    from normrl.networks.minatar_cnn import GRID, MinAtarCNN
    from normrl.networks.mlp import MLP
    from normrl.networks.nature_cnn import NatureCNN

    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(f"the agents need a Box observation space, got {obs_space}")
    shape = tuple(obs_space.shape)
    if len(shape) == 1:
        mlp = MLP(shape[0], out_dim, hidden=tuple(hidden), norm=norm, activation=activation)
        return nn.Sequential(InputCast(uint8_scale(obs_space)), mlp)
    if len(shape) == 3 and shape[1:] == (GRID, GRID):
        return MinAtarCNN(shape[0], out_dim, norm=norm)
    if len(shape) == 3:
        return NatureCNN(shape[0], out_dim, norm=norm, channels_last=True)
    raise ValueError(f"no default network for observation shape {shape}; pass network=")
