"""Permutation tasks for plasticity studies: the same problem, re-encoded per task.

Loss of plasticity is usually measured on a stream of tasks that share their difficulty
but not their input-output mapping (Permuted MNIST, Goodfellow et al. 2013,
arXiv 1312.6211; random-label CIFAR of Lyle et al. 2024, arXiv 2407.01800). This module
provides both kinds, for RL environments and for small supervised data sets:

* :class:`PermutedObservations` — a TensorEnv wrapper that reorders the observation
  elements of every sub-env with one fixed permutation (input permutation);
* :class:`PermutedActions` — a TensorEnv wrapper that relabels the discrete actions
  with one fixed permutation (the RL analogue of label permutation);
* :class:`SupervisedTask` — a classification data set held as tensors, with
  :func:`permuted_digits_tasks` building input- or label-permuted copies of
  scikit-learn's bundled 8x8 digits (1,797 images, no download).

Each permutation is drawn by ``torch.randperm`` from a CPU generator seeded with the
task's seed, so a stream is reproduced exactly by its seeds (``permutation_seed=None``
gives the identity: task 0 of a stream is usually the unpermuted problem).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from normrl.envs.base import TensorEnv


def make_permutation(size: int, seed: int | None) -> torch.Tensor:
    """A permutation of ``range(size)`` (int64, CPU) drawn with ``seed``; identity if ``None``."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if seed is None:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(int(seed)))


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


@dataclass
class SupervisedTask:
    """A classification task held as tensors (a "dataset task" of a stream).

    Attributes:
        x, y: training inputs ``(N, ...)`` float32 and labels ``(N,)`` int64.
        x_test, y_test: held-out inputs and labels (used for evaluation).
        num_classes: number of labels.
        name: display name.

    A learner trains on :meth:`batches` and is evaluated on the test split.
    :meth:`make` is what :class:`normrl.envs.scheduler.Task` calls: it returns the task
    moved to ``device`` (``num_envs`` and ``seed`` do not apply to a data set).
    """

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str = "supervised"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.x.shape[0] != self.y.shape[0] or self.x_test.shape[0] != self.y_test.shape[0]:
            raise ValueError("inputs and labels must have the same number of rows")

    def make(self, num_envs: int = 1, device: str | torch.device = "cpu", seed: int | None = None) -> "SupervisedTask":
        return self.to(device)

    def to(self, device: str | torch.device) -> "SupervisedTask":
        """A copy with every tensor on ``device``."""
        return SupervisedTask(self.x.to(device), self.y.to(device), self.x_test.to(device), self.y_test.to(device),
                              self.num_classes, self.name, dict(self.meta))

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        """One epoch of shuffled ``(x, y)`` minibatches (the last may be smaller)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        order = torch.randperm(self.x.shape[0], generator=generator).to(self.x.device)
        for start in range(0, order.numel(), batch_size):
            idx = order[start:start + batch_size]
            yield self.x[idx], self.y[idx]

    def close(self) -> None:
        """Nothing to release (so a data set can stand where an env is closed)."""


def permuted_digits_tasks(num_tasks: int = 10, mode: str = "input", seed: int = 0, test_fraction: float = 0.2) -> list[SupervisedTask]:
    """``num_tasks`` permuted copies of scikit-learn's 8x8 digits (10 classes).

    ``mode="input"`` permutes the 64 pixels per task; ``mode="label"`` permutes the 10
    class labels per task. Task 0 is the unpermuted problem; task ``k > 0`` uses the
    permutation seeded ``seed * 1000 + k``. Pixels are scaled to ``[0, 1]``; the
    train/test split (default 20% test) is one fixed shuffle seeded with ``seed``.
    """
    if mode not in ("input", "label"):
        raise ValueError(f"mode must be 'input' or 'label', got {mode!r}")
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # scikit-learn is a dev extra
        raise ImportError("permuted digits streams need scikit-learn: pip install scikit-learn") from exc
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * x.shape[0]))
    test, train = order[:n_test], order[n_test:]
    tasks = []
    for k in range(num_tasks):
        perm_seed = None if k == 0 else seed * 1000 + k
        if mode == "input":
            perm = make_permutation(x.shape[1], perm_seed)
            xs, ys = x[:, perm], y
        else:
            perm = make_permutation(10, perm_seed)
            xs, ys = x, perm[y]
        tasks.append(SupervisedTask(xs[train], ys[train], xs[test], ys[test], 10,
                                    name=f"digits-{mode}-perm{k}", meta={"permutation": perm.tolist()}))
    return tasks
