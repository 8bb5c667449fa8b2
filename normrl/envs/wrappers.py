"""TensorEnv wrappers, among them the permutation tasks of plasticity studies.

Loss of plasticity is usually measured on a stream of tasks that share their difficulty
but not their input-output mapping (Permuted MNIST, Goodfellow et al. 2013,
arXiv 1312.6211; random-label CIFAR of Lyle et al. 2024, arXiv 2407.01800). For RL
environments:

* :class:`TensorEnvWrapper` — the base: forwards everything to the wrapped env;
* :class:`PermutedObservations` — reorders the observation elements of every sub-env
  with one fixed permutation (input permutation);
* :class:`PermutedActions` — relabels the discrete actions with one fixed permutation
  (the RL analogue of label permutation).

Each permutation comes from :func:`normrl.utils.permutation.make_permutation` with the
task's seed, so a stream is reproduced exactly by its seeds (``permutation_seed=None``
gives the identity: task 0 of a stream is usually the unpermuted problem). The
supervised counterparts live in :mod:`normrl.data.supervised`.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from normrl.envs.base import TensorEnv
from normrl.utils.permutation import make_permutation


class TensorEnvWrapper(TensorEnv):
    """Base of TensorEnv wrappers: forwards everything to ``env`` unless overridden."""

    def __init__(self, env: TensorEnv):
        if not isinstance(env, TensorEnv):
            raise TypeError(f"expected a TensorEnv, got {type(env).__name__}")
        self.env = env
        self.num_envs = env.num_envs
        self.device = env.device
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.spec_id = env.spec_id

    def reset(self, seed: int | None = None) -> torch.Tensor:
        return self.env.reset(seed)

    def step(self, actions: torch.Tensor):
        return self.env.step(actions)

    def close(self) -> None:
        self.env.close()

    def state_dict(self) -> dict[str, Any]:
        return self.env.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state)

    @property
    def checkpointable(self) -> bool:
        """The wrapped env's (a class attribute on TensorEnv, so ``__getattr__`` would
        not forward it)."""
        return self.env.checkpointable

    def __getattr__(self, name: str):
        # only reached for attributes the wrapper lacks (e.g. ``action_names``)
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env!r})"


class PermutedObservations(TensorEnvWrapper):
    """Reorder the observation elements with one fixed permutation (input permutation).

    The observation of each sub-env is flattened (all dimensions after the batch one),
    indexed with the permutation and reshaped back, so the shape and dtype are kept;
    ``info["final_obs"]`` is permuted the same way. A ``Box`` space with per-element
    bounds has its bounds permuted too.

    Args:
        env: the TensorEnv to wrap.
        permutation_seed: seed of the permutation; ``None`` keeps the identity.
    """

    def __init__(self, env: TensorEnv, permutation_seed: int | None):
        super().__init__(env)
        space = env.single_observation_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"PermutedObservations needs a Box observation space, got {space}")
        self.shape = tuple(space.shape)
        size = int(np.prod(self.shape))
        self.permutation = make_permutation(size, permutation_seed)
        self._index = self.permutation.to(env.device)
        perm = self.permutation.numpy()
        low = np.asarray(space.low).reshape(-1)[perm].reshape(self.shape)
        high = np.asarray(space.high).reshape(-1)[perm].reshape(self.shape)
        self.single_observation_space = gym.spaces.Box(low, high, self.shape, dtype=space.dtype)

    def permute(self, obs: torch.Tensor) -> torch.Tensor:
        """Apply the permutation to a batch of observations ``(N, *shape)``."""
        flat = obs.reshape(obs.shape[0], -1)
        return flat.index_select(1, self._index).reshape(obs.shape)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        return self.permute(self.env.reset(seed))

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            info = dict(info)
            info["final_obs"] = self.permute(info["final_obs"])
        return self.permute(obs), reward, terminated, truncated, info


class PermutedActions(TensorEnvWrapper):
    """Relabel discrete actions with one fixed permutation (the RL form of label permutation).

    The agent's action ``a`` executes the wrapped env's action ``permutation[a]``.

    Args:
        env: the TensorEnv to wrap (``Discrete`` action space).
        permutation_seed: seed of the permutation; ``None`` keeps the identity.
    """

    def __init__(self, env: TensorEnv, permutation_seed: int | None):
        super().__init__(env)
        space = env.single_action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"PermutedActions needs a Discrete action space, got {space}")
        self.permutation = make_permutation(int(space.n), permutation_seed)
        self._index = self.permutation.to(env.device)

    def step(self, actions: torch.Tensor):
        actions = torch.as_tensor(actions, device=self.device)
        return self.env.step(self._index[actions.long()])
