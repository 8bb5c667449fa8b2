"""DQN's Q-network and the epsilon-greedy policy."""
from __future__ import annotations

from typing import Callable

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
    n, a = q_values.shape
    return lazy_epsilon_greedy(lambda: q_values, n, a, epsilon, generator, q_values.device)


def lazy_epsilon_greedy(q_fn: Callable[[], torch.Tensor], n: int, n_actions: int, epsilon: float,
                        generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """:func:`epsilon_greedy` for ``n`` states whose Q-values ``q_fn()`` computes only
    when some state acts greedily: never when ``epsilon >= 1``, and on CPU (where the
    check costs no device sync) not when every state's draw explores. Early in
    training that skips most acting forwards (SB3's DQN skips them the same way).
    The random draws, hence the actions, equal :func:`epsilon_greedy`'s."""
    if epsilon <= 0.0:
        return q_fn().argmax(-1)
    explore = torch.rand(n, device=device, generator=generator) < epsilon
    random_actions = torch.randint(n_actions, (n,), device=device, generator=generator)
    if epsilon >= 1.0 or (torch.device(device).type == "cpu" and bool(explore.all())):
        return random_actions
    return torch.where(explore, random_actions, q_fn().argmax(-1))
