"""Preallocated on-device storage of one PPO rollout: ``(num_steps, num_envs, ...)``."""
from __future__ import annotations

import torch


class RolloutBuffer:
    """Tensors of one on-policy rollout, allocated once on ``device``.

    Fields (all ``(num_steps, num_envs, ...)``): ``obs`` (observation dtype),
    ``actions`` (int64), ``log_probs``, ``values``, ``rewards`` (float32) and ``dones``
    (float32 0/1: the episode ended at this step, terminated or truncated),
    ``task_ids`` (int64). Write step ``t`` with :meth:`store`; the agent writes
    ``rewards`` after bootstrapping truncations.
    """

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype, device: torch.device):
        if num_steps < 1 or num_envs < 1:
            raise ValueError(f"num_steps and num_envs must be >= 1, got {num_steps}, {num_envs}")
        self.num_steps, self.num_envs = num_steps, num_envs
        shape = (num_steps, num_envs)
        self.obs = torch.zeros(shape + tuple(obs_shape), dtype=obs_dtype, device=device)
        self.actions = torch.zeros(shape, dtype=torch.int64, device=device)
        self.log_probs = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.dones = torch.zeros(shape, device=device)
        self.task_ids = torch.zeros(shape, dtype=torch.int64, device=device)

    def store(self, t: int, obs, actions, log_probs, values, rewards, dones, task_id: int) -> None:
        """Write step ``t`` of every sub-env (in place, no allocation)."""
        self.obs[t].copy_(obs)
        self.actions[t].copy_(actions)
        self.log_probs[t].copy_(log_probs)
        self.values[t].copy_(values)
        self.rewards[t].copy_(rewards)
        self.dones[t].copy_(dones)
        self.task_ids[t].fill_(task_id)
