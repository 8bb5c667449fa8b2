"""Device-resident replay buffer with n-step returns and a task id per transition.

Layout: a ring of ``rows = capacity // num_envs`` rows; row ``r`` holds one transition
of each of the ``num_envs`` sub-envs, written by one batched env step, so each column is
one sub-env's time series. n-step returns are assembled at sampling time from the
column: for a sampled start ``(t, e)`` and ``m`` = steps until the first episode end
within ``n`` (inclusive) or ``n``,

    R = sum_{k<m} gamma^k r_{t+k, e},   next_obs = next_obs_{t+m-1, e},
    discount = gamma^m * (1 - terminated_{t+m-1, e})

so a truncated episode bootstraps from its true last observation (``final_obs``)
and a terminated one does not bootstrap. Starts whose ``n`` following rows are not
all written yet are never sampled.

Observations are stored with ``obs_dtype`` (e.g. ``torch.uint8`` for Atari frames:
4x less memory than float32); both ``obs`` and ``next_obs`` are stored, which is
simple and exact with auto-resetting envs at the price of twice the observation memory.
Sampled observations are gathered with one ``index_select`` over the flattened
``(rows * num_envs)`` axis (several times faster on CPU than 2-D advanced indexing), and
with ``channels_last=True`` image observations are stored as ``(H, W, C)`` so a batch comes
out channels-last for a channels-last CNN without a conversion copy.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class ReplaySample(NamedTuple):
    """A sampled batch; ``discounts`` already include ``gamma^m`` and termination."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    discounts: torch.Tensor
    task_ids: torch.Tensor


class ReplayBuffer:
    """Ring buffer of transitions of ``num_envs`` batched sub-envs, on ``device``.

    Args:
        capacity: total transitions kept (rounded down to a multiple of ``num_envs``;
            must be at least ``num_envs``).
        num_envs: transitions written per :meth:`add` (one batched env step).
        obs_shape: shape of one observation.
        obs_dtype: storage dtype of observations [``torch.float32``]; observations are
            cast on write, so pass ``torch.uint8`` only for integer-valued frames.
        device: where everything lives [``"cpu"``].
        channels_last: store ``(C, H, W)`` observations physically as ``(H, W, C)``;
            ``obs``/``next_obs`` and sampled batches keep the logical ``(..., C, H, W)``
            shape with channels-last strides [False].
    """

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                 channels_last: bool = False):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not isinstance(capacity, int) or capacity < num_envs:
            raise ValueError(f"capacity must be an int >= num_envs ({num_envs}), got {capacity!r}")
        self.num_envs = num_envs
        self.rows = capacity // num_envs
        self.capacity = self.rows * num_envs
        self.obs_shape = tuple(obs_shape)
        self.obs_dtype = obs_dtype
        self.device = torch.device(device)
        if channels_last and len(self.obs_shape) != 3:
            raise ValueError(f"channels_last needs (C, H, W) observations, got shape {self.obs_shape}")
        self.channels_last = channels_last
        shape = (self.rows, num_envs)
        self.obs = self._obs_storage(shape, obs_dtype)
        self.next_obs = self._obs_storage(shape, obs_dtype)
        self.actions = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self.rewards = torch.zeros(shape, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.dones = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.task_ids = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self.pos = 0  # next row to write
        self.num_rows = 0  # rows written so far (<= rows)

    def _obs_storage(self, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
        if not self.channels_last:
            return torch.zeros(shape + self.obs_shape, dtype=dtype, device=self.device)
        c, h, w = self.obs_shape
        return torch.zeros(shape + (h, w, c), dtype=dtype, device=self.device).permute(0, 1, 4, 2, 3)

    def _gather_obs(self, storage: torch.Tensor, t: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        """``storage[t, env]`` as one ``index_select`` on the flattened row axis."""
        flat_index = t * self.num_envs + env
        if self.channels_last:
            physical = storage.permute(0, 1, 3, 4, 2).reshape((self.capacity,) + storage.shape[3:] + storage.shape[2:3])
            return physical.index_select(0, flat_index).permute(0, 3, 1, 2)
        return storage.reshape((self.capacity,) + self.obs_shape).index_select(0, flat_index)

    def __len__(self) -> int:
        """Number of stored transitions."""
        return self.num_rows * self.num_envs

    def clear(self) -> None:
        """Forget every transition (storage stays allocated)."""
        self.pos = 0
        self.num_rows = 0

    def add(self, obs, actions, rewards, next_obs, terminated, truncated, task_id: int | torch.Tensor = 0) -> None:
        """Store one batched step: every argument has a leading ``num_envs`` dim.

        ``next_obs`` must be the true next observation (the env's ``final_obs`` where
        an episode ended). ``task_id`` is an int or a ``(num_envs,)`` tensor.
        """
        r = self.pos
        self.obs[r].copy_(obs)
        self.next_obs[r].copy_(next_obs)
        self.actions[r].copy_(actions)
        self.rewards[r].copy_(rewards)
        self.terminated[r].copy_(terminated)
        self.dones[r].copy_(terminated | truncated)
        if isinstance(task_id, torch.Tensor):
            self.task_ids[r].copy_(task_id)
        else:
            self.task_ids[r].fill_(int(task_id))
        self.pos = (r + 1) % self.rows
        self.num_rows = min(self.num_rows + 1, self.rows)

    def num_startable(self, n_step: int = 1) -> int:
        """Transitions that can start an ``n_step`` return now."""
        return max(0, self.num_rows - (n_step - 1)) * self.num_envs

    def sample(self, batch_size: int, n_step: int = 1, gamma: float = 0.99, generator: torch.Generator | None = None) -> ReplaySample:
        """Sample ``batch_size`` transitions uniformly (with replacement) among the
        valid starts, as ``n_step`` returns (see the module docstring)."""
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        valid_rows = self.num_rows - (n_step - 1)
        if valid_rows <= 0:
            raise ValueError(f"cannot sample {n_step}-step returns from {self.num_rows} stored rows; add more transitions first")
        oldest = self.pos if self.num_rows == self.rows else 0
        flat = torch.randint(valid_rows * self.num_envs, (batch_size,), device=self.device, generator=generator)
        row_offset = flat // self.num_envs
        env = flat % self.num_envs
        t = (oldest + row_offset) % self.rows
        if n_step == 1:
            disc = gamma * (~self.terminated[t, env]).float()
            return ReplaySample(self._gather_obs(self.obs, t, env), self.actions[t, env], self.rewards[t, env],
                                self._gather_obs(self.next_obs, t, env), disc, self.task_ids[t, env])
        ks = torch.arange(n_step, device=self.device)
        rows = (t[:, None] + ks) % self.rows  # (B, n)
        rew = self.rewards[rows, env[:, None]]
        done = self.dones[rows, env[:, None]].float()
        # alive[k] = prod_{j<k} (1 - done_j): step k is still in the same episode
        alive = torch.cumprod(torch.cat([torch.ones_like(done[:, :1]), 1.0 - done[:, :-1]], dim=1), dim=1)
        powers = gamma ** ks.float()
        returns = (rew * alive * powers).sum(1)
        m = alive.sum(1).long()  # steps used, in [1, n]
        last = rows.gather(1, (m - 1)[:, None]).squeeze(1)
        disc = (gamma ** m.float()) * (~self.terminated[last, env]).float()
        return ReplaySample(self._gather_obs(self.obs, t, env), self.actions[t, env], returns,
                            self._gather_obs(self.next_obs, last, env), disc, self.task_ids[t, env])

    def state_dict(self) -> dict:
        """Everything stored (only the written rows) and the write position."""
        n = self.num_rows
        keys = ("obs", "next_obs", "actions", "rewards", "terminated", "dones", "task_ids")
        return {"rows": self.rows, "num_envs": self.num_envs, "pos": self.pos, "num_rows": n, **{k: getattr(self, k)[:n].clone() for k in keys}}

    def load_state_dict(self, state: dict) -> None:
        """Restore a buffer saved by :meth:`state_dict` (same capacity and num_envs)."""
        if state["rows"] != self.rows or state["num_envs"] != self.num_envs:
            raise ValueError(f"replay buffer shape mismatch: saved rows={state['rows']}, num_envs={state['num_envs']}; current rows={self.rows}, num_envs={self.num_envs}")
        n = int(state["num_rows"])
        for k in ("obs", "next_obs", "actions", "rewards", "terminated", "dones", "task_ids"):
            getattr(self, k)[:n].copy_(state[k])
        self.pos, self.num_rows = int(state["pos"]), n

    def mark_episode_boundary(self) -> None:
        """End every sub-env's time series at the newest row (as a truncation), so
        n-step returns never span it; agents call this when the env is replaced."""
        if self.num_rows:
            self.dones[(self.pos - 1) % self.rows] = True
