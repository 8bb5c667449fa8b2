"""Use a normrl TensorEnv where code expects a gymnasium ``VectorEnv``.

:class:`TensorToGymVectorEnv` wraps any :class:`normrl.envs.TensorEnv` (e.g.
``make_env("CartPole-v1", 8)``) as a ``gymnasium.vector.VectorEnv`` (gymnasium 1.x API)
with numpy inputs and outputs, so gymnasium vector wrappers and libraries built on
gymnasium vector envs (Stable-Baselines3 through a small ``VecEnv`` shim of its own) can
drive the torch environments.

This is the slow path: every ``step`` copies actions to the env's device and the
observations, rewards, flags and episode statistics back to host numpy (one device
synchronization per step). Training loops that stay in torch should use the TensorEnv
directly.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from normrl.envs.base import TensorEnv


class TensorToGymVectorEnv(gym.vector.VectorEnv):
    """A gymnasium ``VectorEnv`` view of a TensorEnv (numpy in, numpy out).

    Autoreset mode ``AutoresetMode.SAME_STEP`` (``metadata["autoreset_mode"]``), because
    TensorEnvs reset finished sub-envs inside the step that finishes them: the returned
    observation of a finished sub-env is already the first one of its next episode, and
    ``infos`` then carries, as gymnasium's ``SyncVectorEnv`` does in that mode:

    * ``infos["final_obs"]`` — object array, the terminal observation of each finished
      sub-env (``None`` elsewhere), with the mask ``infos["_final_obs"]``;
    * ``infos["final_info"]`` — ``{"episode_return", "episode_length"}`` arrays (with
      their ``_``-prefixed masks) holding the finished episodes' totals, with the mask
      ``infos["_final_info"]``.

    ``infos`` is empty on steps where nothing finished. A TensorEnv whose ``info`` has no
    ``final_obs`` (e.g. MinAtar without a time limit) gives no ``final_obs`` key either. Rewards are float64 and
    terminations/truncations bool arrays of shape ``(num_envs,)``, as gymnasium's vector
    envs return them. ``reset(seed=int)`` reseeds the TensorEnv's generator; per-sub-env
    seed lists and ``options`` are not supported (ValueError). Observations are cast to
    the observation space's dtype.

    Args:
        tensor_env: the TensorEnv to wrap; closing the adapter closes it.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, tensor_env: TensorEnv):
        if not isinstance(tensor_env, TensorEnv):
            raise ValueError(f"tensor_env must be a normrl TensorEnv, got {type(tensor_env).__name__}")
        self.env = tensor_env
        self.num_envs = tensor_env.num_envs
        self.single_observation_space = tensor_env.single_observation_space
        self.single_action_space = tensor_env.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs_dtype = getattr(self.single_observation_space, "dtype", None)

    def _to_numpy_obs(self, obs: torch.Tensor) -> np.ndarray:
        array = obs.detach().cpu().numpy()
        # on a CPU device the array shares memory with the env's tensor, which an env may
        # reuse for the next step (ale-py's buffers): hand out a copy, as gymnasium does
        dtype = array.dtype if self._obs_dtype is None else self._obs_dtype
        return array.astype(dtype, copy=obs.device.type == "cpu")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env; an int ``seed`` reseeds the wrapped env's generator."""
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an int or None (per-sub-env seed lists are not supported), got {seed!r}")
        if options:
            raise ValueError(f"reset options are not supported by {type(self).__name__}, got {options!r}")
        super().reset(seed=None if seed is None else int(seed))
        obs = self.env.reset(seed=None if seed is None else int(seed))
        return self._to_numpy_obs(obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step with a numpy (or array-like) batch of actions, shape ``(num_envs,)``."""
        actions_t = torch.as_tensor(np.asarray(actions), device=self.env.device)
        if isinstance(self.single_action_space, gym.spaces.Discrete):
            if actions_t.dtype.is_floating_point or actions_t.dtype == torch.bool:
                raise ValueError(f"discrete actions must be integers, got dtype {actions_t.dtype}")
            actions_t = actions_t.to(torch.int64)
        obs, reward, terminated, truncated, info = self.env.step(actions_t)
        obs_np = self._to_numpy_obs(obs)
        rewards = reward.detach().cpu().numpy().astype(np.float64)
        terminations = terminated.cpu().numpy().astype(bool)
        truncations = truncated.cpu().numpy().astype(bool)
        done = terminations | truncations
        infos: dict[str, Any] = {}
        if done.any():
            if "final_obs" in info:
                terminal = self._to_numpy_obs(info["final_obs"])
                final_obs = np.full(self.num_envs, None, dtype=object)
                for i in np.flatnonzero(done):
                    final_obs[i] = terminal[i].copy()
                infos["final_obs"] = final_obs
                infos["_final_obs"] = done.copy()
            episode_return = info["episode_return"].cpu().numpy().astype(np.float64)
            episode_length = info["episode_length"].cpu().numpy().astype(np.int64)
            infos["final_info"] = {
                "episode_return": np.where(done, episode_return, 0.0),
                "_episode_return": done.copy(),
                "episode_length": np.where(done, episode_length, 0),
                "_episode_length": done.copy(),
            }
            infos["_final_info"] = done.copy()
        return obs_np, rewards, terminations, truncations, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Close the wrapped TensorEnv."""
        self.env.close()

    def __repr__(self) -> str:
        return f"TensorToGymVectorEnv({self.env!r})"
