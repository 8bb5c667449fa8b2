"""Per-sub-env episode bookkeeping shared by the batched torch environments.

:class:`EpisodeStats` keeps the running return and length of each of ``num_envs``
sub-environments as tensors on the env's device and builds the ``info`` dict of the
TensorEnv contract (normrl/envs/base.py) without any host synchronization:

* ``info["done"]`` — bool ``(num_envs,)``, ``terminated | truncated``;
* ``info["episode_return"]`` — ``(num_envs,)`` float32: where ``done``, the finished
  episode's total reward; elsewhere the running total of the unfinished episode;
* ``info["episode_length"]`` — ``(num_envs,)`` int64, the same for the step count;
* ``info["final_obs"]`` (when given) — the observation each transition produced
  *before* any automatic reset. Where ``done`` it is the terminal observation (use it to
  bootstrap on truncation); elsewhere it equals the returned observation.

Typical use inside an env's ``step``::

    truncated = (self.stats.lengths + 1 >= max_steps)      # length after this step
    info = self.stats.update(reward, terminated, truncated, final_obs=next_obs)
    obs = torch.where(info["done"][:, None], reset_obs, next_obs)
"""
from __future__ import annotations

from typing import Any

import torch


class EpisodeStats:
    """Running episode return/length of ``num_envs`` sub-envs, as tensors on ``device``.

    Args:
        num_envs: number of sub-environments (positive int).
        device: device of the tensors (that of the env).
        return_dtype: dtype of the returns; default ``torch.float32``.

    Attributes:
        returns: ``(num_envs,)`` running return of the current episodes.
        lengths: ``(num_envs,)`` int64, steps taken in the current episodes.

    Every method replaces these tensors instead of writing into them, so tensors
    handed out in an ``info`` dict are never changed afterwards.
    """

    def __init__(self, num_envs: int, device: str | torch.device = "cpu", return_dtype: torch.dtype = torch.float32):
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.return_dtype = return_dtype
        self.reset()

    def reset(self) -> None:
        """Zero the running totals of every sub-env (call from the env's ``reset``)."""
        self.returns = torch.zeros(self.num_envs, dtype=self.return_dtype, device=self.device)
        self.lengths = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)

    def update(
        self,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        final_obs: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Account one step of every sub-env and return the step's ``info`` dict.

        ``reward`` is added to the running return and the length grows by one; then the
        totals of sub-envs that are ``terminated | truncated`` are reported and zeroed.
        ``final_obs`` (optional) is passed through as ``info["final_obs"]``.
        """
        done = terminated | truncated
        returns = self.returns + reward.to(self.return_dtype)
        lengths = self.lengths + 1
        info: dict[str, torch.Tensor] = {"done": done, "episode_return": returns, "episode_length": lengths}
        if final_obs is not None:
            info["final_obs"] = final_obs
        self.returns = returns.masked_fill(done, 0)
        self.lengths = lengths.masked_fill(done, 0)
        return info

    def state_dict(self) -> dict[str, Any]:
        """The running totals (copies), for exact resumption."""
        return {"returns": self.returns.clone(), "lengths": self.lengths.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore totals saved by :meth:`state_dict`; shapes must match ``num_envs``."""
        for key in ("returns", "lengths"):
            if key not in state:
                raise ValueError(f"EpisodeStats state is missing {key!r}; expected keys 'returns', 'lengths'")
            if tuple(state[key].shape) != (self.num_envs,):
                raise ValueError(f"EpisodeStats state {key!r} has shape {tuple(state[key].shape)}, expected ({self.num_envs},)")
        self.returns = state["returns"].to(device=self.device, dtype=self.return_dtype).clone()
        self.lengths = state["lengths"].to(device=self.device, dtype=torch.int64).clone()
