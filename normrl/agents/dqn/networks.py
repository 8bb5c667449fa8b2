"""DQN's Q-network and the epsilon-greedy policy."""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.agents.common.build import build_network


def build_q_network(obs_space, n_actions: int, norm="none", hidden=(120, 84), activation="relu") -> nn.Module:
    """``obs -> Q(obs, .)`` of shape ``(B, n_actions)``: an MLP for vectors, MinAtarCNN
    for MinAtar grids, NatureCNN for Atari frames (:func:`build_network`)."""
    return build_network(obs_space, n_actions, norm, hidden, activation)


def linear_epsilon(step: int, start: float, end: float, duration: int) -> float:
    """``start`` decaying linearly to ``end`` over ``duration`` steps, then ``end``
    (CleanRL's ``linear_schedule``)."""
    slope = (end - start) / duration
    return max(slope * step + start, end) if end <= start else min(slope * step + start, end)


def epsilon_greedy(q_values: torch.Tensor, epsilon: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Greedy actions of ``q_values (B, A)``, each replaced by a uniform random action
    with probability ``epsilon`` (random numbers from ``generator``)."""
    greedy = q_values.argmax(-1)
    if epsilon <= 0.0:
        return greedy
    n, a = q_values.shape
    explore = torch.rand(n, device=q_values.device, generator=generator) < epsilon
    random_actions = torch.randint(a, (n,), device=q_values.device, generator=generator)
    return torch.where(explore, random_actions, greedy)
