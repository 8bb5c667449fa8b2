"""The TensorEnv contract: batched environments whose state lives in torch tensors.

A TensorEnv steps ``num_envs`` sub-environments at once on ``device``. Observations,
rewards and flags are tensors on that device; nothing in ``step`` synchronizes with
the host, so a rollout loop can run entirely on a GPU.

Contract (docs/envs.md):

* ``num_envs``, ``device``, gymnasium ``single_observation_space`` and
  ``single_action_space``;
* ``reset(seed=None) -> obs``;
* ``step(actions) -> obs, reward, terminated, truncated, info``;
* finished sub-environments reset automatically: the returned ``obs`` of a finished
  sub-env is already the first observation of its next episode;
* on the step where sub-env ``i`` finishes an episode, ``info["episode_return"][i]``
  and ``info["episode_length"][i]`` hold that episode's totals, and
  ``info["done"][i]`` is true (elsewhere those entries hold the running totals of the
  unfinished episode and are masked by ``done``);
* where an episode can be truncated (a time limit), ``info["final_obs"]`` holds each
  finished sub-env's last observation (before the automatic reset), so agents can
  bootstrap from it; envs without truncation may omit it.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch


class TensorEnv:
    """Base class of batched torch environments (see the module docstring)."""

    num_envs: int
    device: torch.device
    single_observation_space: gym.Space
    single_action_space: gym.Space
    #: the env id this instance was made from (set by :func:`normrl.envs.make_env`)
    spec_id: str = ""

    def reset(self, seed: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (threads, pinned buffers); a no-op for pure tensor envs."""

    #: False for envs whose running episodes cannot be saved (ale-py's emulators): an
    #: agent restored from a checkpoint then resets the env and starts fresh episodes.
    checkpointable: bool = True

    # Checkpointing: envs that hold state beyond RNG override these.
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state to load")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.spec_id!r}, num_envs={self.num_envs}, device={self.device})"
