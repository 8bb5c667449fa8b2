"""DQN's Q-network and the epsilon-greedy policy."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from normrl.networks.build import build_network


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


def lazy_epsilon_greedy(q_network: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor, n_actions: int,
                        epsilon: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`epsilon_greedy` of ``q_network(obs)`` that runs the network only on the
    states that act greedily: none when ``epsilon >= 1``, and on CPU (where choosing
    the rows costs no device sync) only the rows whose draw did not explore. Early in
    training that skips most of the acting forward; SB3's DQN likewise skips it when
    its one draw for all envs explores. The random draws are :func:`epsilon_greedy`'s,
    so the actions are equal whenever each state's Q-values do not depend on the other
    states of the batch (eval-mode networks: the agents act in eval mode)."""
    if epsilon <= 0.0:
        return q_network(obs).argmax(-1)
    n, device = obs.shape[0], obs.device
    explore = torch.rand(n, device=device, generator=generator) < epsilon
    random_actions = torch.randint(n_actions, (n,), device=device, generator=generator)
    if epsilon >= 1.0:
        return random_actions
    if device.type != "cpu":
        return torch.where(explore, random_actions, q_network(obs).argmax(-1))
    greedy_rows = (~explore).nonzero().squeeze(1)
    if greedy_rows.numel() == n:
        return q_network(obs).argmax(-1)
    if greedy_rows.numel():
        random_actions[greedy_rows] = q_network(obs.index_select(0, greedy_rows)).argmax(-1)
    return random_actions
