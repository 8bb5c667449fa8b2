"""Tiny envs and networks for the agent unit tests (no dependency on normrl.networks)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from normrl.envs.base import TensorEnv
from normrl.envs.episode_stats import EpisodeStats


class ChainEnv(TensorEnv):
    """Observation ``[position, 1]``; every episode lasts exactly ``length`` steps and is
    *truncated* (never terminated). Reward 1 per step. The terminal observation has
    position ``length`` (distinct from the reset observation, position 0), so a test can
    tell whether bootstrapping used ``final_obs``. Deterministic; ``state_dict`` holds
    the positions."""

    def __init__(self, num_envs: int = 2, length=3, device="cpu", terminate: bool = False):
        """``length``: an int, or one episode length per sub-env (a list)."""
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.length = torch.as_tensor(length, dtype=torch.float32, device=self.device).expand(num_envs)
        self.terminate = terminate
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.stats = EpisodeStats(num_envs, self.device)
        self.pos = torch.zeros(num_envs, device=self.device)

    def _obs(self, pos):
        return torch.stack([pos, torch.ones_like(pos)], dim=1)

    def reset(self, seed=None):
        self.pos = torch.zeros(self.num_envs, device=self.device)
        self.stats.reset()
        return self._obs(self.pos)

    def step(self, actions):
        pos = self.pos + 1
        ended = pos >= self.length
        terminated = ended if self.terminate else torch.zeros_like(ended)
        truncated = torch.zeros_like(ended) if self.terminate else ended
        reward = torch.ones(self.num_envs, device=self.device)
        final_obs = self._obs(pos)
        info = self.stats.update(reward, terminated, truncated, final_obs=final_obs)
        self.pos = torch.where(ended, torch.zeros_like(pos), pos)
        return self._obs(self.pos), reward, terminated, truncated, info

    def state_dict(self):
        return {"pos": self.pos.clone(), "stats": self.stats.state_dict()}

    def load_state_dict(self, state):
        self.pos = state["pos"].clone()
        self.stats.load_state_dict(state["stats"])


class PositionValueNet(nn.Module):
    """PPO network: uniform policy, value ``= 10 * position`` (``obs[:, 0]``), plus a
    zero-weighted parameter so the optimizer has something to step."""

    def __init__(self, n_actions: int = 2):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.n_actions = n_actions

    def forward(self, obs):
        logits = torch.zeros(obs.shape[0], self.n_actions) + 0 * self.dummy
        return logits, self.value(obs)

    def value(self, obs):
        return 10.0 * obs[:, 0] + 0 * self.dummy


def small_mlp(in_dim: int, out_dim: int, hidden: int = 16) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))


class SmallActorCritic(nn.Module):
    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.actor = small_mlp(in_dim, n_actions)
        self.critic = small_mlp(in_dim, 1)

    def forward(self, obs):
        return self.actor(obs.float()), self.critic(obs.float()).squeeze(-1)

    def value(self, obs):
        return self.critic(obs.float()).squeeze(-1)


class StopOnActionEnv(TensorEnv):
    """Observation ``[0, 1]``; reward 1 per step; the episode terminates on the first
    step whose action is 1. A policy that always picks 0 (e.g. :class:`PositionValueNet`'s
    greedy action) never ends an episode; under ε-greedy evaluation each step ends it
    with probability ε/2, so the mean return is 2/ε."""

    def __init__(self, num_envs: int = 2, device="cpu"):
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.stats = EpisodeStats(num_envs, self.device)

    def _obs(self):
        return torch.tensor([[0.0, 1.0]], device=self.device).expand(self.num_envs, 2)

    def reset(self, seed=None):
        self.stats.reset()
        return self._obs()

    def step(self, actions):
        terminated = actions == 1
        reward = torch.ones(self.num_envs, device=self.device)
        info = self.stats.update(reward, terminated, torch.zeros_like(terminated))
        return self._obs(), reward, terminated, torch.zeros_like(terminated), info
