"""Episode statistics without per-step host syncs, plus TensorBoard and tqdm output.

Every step the agent hands over the env's ``info`` tensors (references, no copy, no
sync). At a logging interval :meth:`EpisodeLog.flush` concatenates them, pulls the
finished episodes to the host once, and writes:

* ``charts/episode_return`` and ``charts/episode_length``: mean over the episodes that
  finished since the last flush, at the current global step;
* ``charts/sps``: env steps per second since the last flush.

It also keeps the last 100 finished episode returns (``recent_mean_return``) and the
return curve ``[(step, mean return of the episodes finished in that interval)]``
written to ``summary.json``.
"""
from __future__ import annotations

import collections
import time

import torch


class EpisodeLog:
    """Collects finished-episode returns/lengths on the device, flushes on demand."""

    def __init__(self, window: int = 100):
        self.window = window
        self.recent_returns: collections.deque = collections.deque(maxlen=window)
        self.curve: list[tuple[int, float]] = []
        self.num_episodes = 0
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._last_time = time.perf_counter()
        self._last_step: int | None = None
        self.last_sps = 0.0

    def record(self, info: dict) -> None:
        """Keep this step's finished-episode returns/lengths (NaN where not finished);
        fresh tensors, so an env reusing its ``info`` buffers cannot change them."""
        done = info["done"]
        nan = float("nan")
        self._pending.append((
            torch.where(done, info["episode_return"].float(), nan),
            torch.where(done, info["episode_length"].float(), nan),
        ))

    def restart_clock(self, step: int) -> None:
        """Start timing steps/s from now at global step ``step`` (start of ``learn``)."""
        self._last_time = time.perf_counter()
        self._last_step = step

    @property
    def recent_mean_return(self) -> float:
        """Mean return of the last ``window`` finished episodes (nan if none)."""
        return sum(self.recent_returns) / len(self.recent_returns) if self.recent_returns else float("nan")

    def flush(self, step: int, writer=None) -> None:
        """Move pending episodes to the host (one sync) and log them at ``step``."""
        self.tick(step, writer)
        if not self._pending:
            return
        both = self.pending_on_host()
        finished = ~torch.isnan(both[0])
        self.log_episodes(step, both[0][finished].tolist(), both[1][finished].tolist(), writer)

    def tick(self, step: int, writer=None) -> None:
        """Update (and log) ``charts/sps`` at global step ``step``."""
        now = time.perf_counter()
        if self._last_step is not None and now > self._last_time:
            self.last_sps = (step - self._last_step) / (now - self._last_time)
        self._last_time, self._last_step = now, step
        if writer is not None:
            writer.add_scalar("charts/sps", self.last_sps, step)

    def pending_on_host(self) -> torch.Tensor:
        """The recorded rows since the last flush as one ``(2, M)`` CPU tensor (returns,
        lengths; NaN where no episode finished), in recording order; clears them."""
        both = torch.stack([torch.cat([r for r, _ in self._pending]), torch.cat([n for _, n in self._pending])]).cpu()
        self._pending.clear()
        return both

    def log_episodes(self, step: int, rets: list, lens: list, writer=None) -> None:
        """Account finished episodes (host lists of returns and lengths) at ``step``."""
        if not rets:
            return
        self.num_episodes += len(rets)
        self.recent_returns.extend(rets)
        mean_ret = sum(rets) / len(rets)
        self.curve.append((step, mean_ret))
        if writer is not None:
            writer.add_scalar("charts/episode_return", mean_ret, step)
            writer.add_scalar("charts/episode_length", sum(lens) / len(lens), step)

    def state_dict(self) -> dict:
        return {"recent_returns": list(self.recent_returns), "curve": list(self.curve), "num_episodes": self.num_episodes}

    def load_state_dict(self, state: dict) -> None:
        self.recent_returns = collections.deque(state["recent_returns"], maxlen=self.window)
        self.curve = [tuple(x) for x in state["curve"]]
        self.num_episodes = int(state["num_episodes"])
        self._pending.clear()
