"""A task of a continual stream: an env id (or dataset task), a step budget, a seed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@dataclass
class Task:
    """One task of a stream.

    Args:
        source: an env id for :func:`normrl.envs.make_env` (``"MinAtar/Breakout"``,
            ``"ALE/Pong-v5"``), or a dataset task: any object with a
            ``make(num_envs, device, seed)`` method (e.g.
            :class:`normrl.data.SupervisedTask`).
        steps: env steps to train on this task per visit (positive int).
        seed: env seed for this task; ``None`` (default) derives one from the
            scheduler's seed and the visit index.
        name: display name (TensorBoard tag, matrix column); default: ``source``.
        env_kwargs: keyword arguments for ``make_env`` (default none).
        wrapper: optional callable applied to the made env (e.g. a permutation wrapper).
    """

    source: Any
    steps: int
    seed: int | None = None
    name: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    wrapper: Callable[[Any], Any] | None = None

    def __post_init__(self):
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"Task steps must be a positive int, got {self.steps!r}")
        if not isinstance(self.source, str) and not hasattr(self.source, "make"):
            raise ValueError(f"Task source must be an env id string or a dataset task with make(), got {type(self.source).__name__}")
        if self.name is None:
            self.name = self.source if isinstance(self.source, str) else getattr(self.source, "name", type(self.source).__name__)

    @property
    def env_id(self) -> str | None:
        """The env id, or ``None`` for a dataset task."""
        return self.source if isinstance(self.source, str) else None

    def make(self, num_envs: int, device: str | torch.device, seed: int | None):
        """Build this task's env (or data set) on ``device``."""
        if isinstance(self.source, str):
            from normrl.envs.registry import make_env

            env = make_env(self.source, num_envs=num_envs, device=device, seed=seed, **self.env_kwargs)
        else:
            env = self.source.make(num_envs=num_envs, device=device, seed=seed)
        return self.wrapper(env) if self.wrapper is not None else env
