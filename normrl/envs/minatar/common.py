"""Shared machinery of the batched torch MinAtar games.

MinAtar (Young & Tian 2019, arXiv 1903.03176) is a set of five 10x10 miniature Atari
games. The reference implementation is the ``minatar`` package (1.0.15); the games
in this folder reimplement its *rules* as batched tensor code: every sub-environment
of a batch advances in the same tensor operations, on any device.

Design (one idea per piece):

* The game state is a ``dict[str, Tensor]`` whose tensors all have a leading
  ``num_envs`` dimension (``MinAtarEnv.state``).
* All randomness of a step is drawn up front as uniforms in ``[0, 1)`` from one
  ``torch.Generator`` on the device (:meth:`MinAtarEnv.sample_draws`). The game rules
  are the pure function ``transition(state, action, draws) -> (next_state, reward,
  terminal)``, so tests can replay the reference package's random outcomes exactly
  and ``torch.compile`` sees no generator calls inside the rules.
* :meth:`MinAtarEnv.step_with_draws` composes sticky actions, the transition,
  episode bookkeeping, optional truncation and automatic reset; :meth:`step` is
  ``step_with_draws(actions, sample_draws())``.

A draw dictionary has three entries: ``"sticky"`` (shape ``(num_envs,)``), ``"step"``
(the game's per-step draws, named by ``step_draw_shapes``) and ``"reset"`` (the draws
of a fresh episode, named by ``reset_draw_shapes``; every step draws them for all
sub-envs because the host does not know which sub-envs will finish). A uniform ``u``
becomes an integer in ``[low, high)`` as ``low + floor(u * (high - low))``
(:func:`uniform_to_int`) and a coin of probability ``p`` as ``u < p``.

Sticky actions follow the reference ``minatar.Environment``: each step, with
probability ``sticky_action_prob`` the previous (full-set) action is repeated instead
of the chosen one, and the executed action becomes the new "previous" action. Like the
reference, the previous action survives episode resets and starts at 0 (no-op).
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import torch

from normrl.envs.base import TensorEnv
from normrl.envs.episode_stats import EpisodeStats

#: The six MinAtar actions, in the reference's index order: no-op, left, up, right,
#: down, fire.
FULL_ACTION_NAMES: tuple[str, ...] = ("n", "l", "u", "r", "d", "f")
NOOP, LEFT, UP, RIGHT, DOWN, FIRE = range(6)
GRID = 10
#: observation dtypes ``MinAtarEnv(obs_dtype=...)`` accepts, by name
OBS_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "uint8": torch.uint8, "bool": torch.bool}

State = dict[str, torch.Tensor]
Draws = dict[str, Any]


def uniform_to_int(u: torch.Tensor, low: int, high: int | torch.Tensor) -> torch.Tensor:
    """Map uniforms in ``[0, 1)`` to integers uniform in ``[low, high)`` (int64).

    ``high`` may be a tensor broadcastable with ``u`` (a per-sub-env range); the
    product ``u * (high - low)`` is computed in ``u``'s dtype, then floored.
    """
    n = high - low
    k = (u * n).long()
    # clamp guards u * n rounding up to n; a tensor bound is used as is (no host copy)
    return low + (torch.minimum(k, n - 1) if isinstance(n, torch.Tensor) else k.clamp(max=n - 1))


def where_rows(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sub-env select ``a[i]`` where ``mask[i]`` else ``b[i]``; ``a``, ``b`` of one shape ``(n, ...)``.

    Eager bool maps whose rows are a multiple of 4 bytes (e.g. 10x10) are selected four
    cells at a time as int32 (torch's broadcast bool ``where`` was ~7x slower).
    """
    if (a.dtype == torch.bool and b.dtype == torch.bool and a.dim() > 1 and a.shape == b.shape
            and a[0].numel() % 4 == 0 and not torch.compiler.is_compiling()):
        n = a.shape[0]
        words = torch.where(mask.view(n, 1), a.contiguous().view(n, -1).view(torch.int32),
                            b.contiguous().view(n, -1).view(torch.int32))
        return words.view(torch.bool).view(a.shape)
    return torch.where(mask.view(mask.shape + (1,) * (a.dim() - 1)), a, b)


def where_state(mask: torch.Tensor, a: State, b: State) -> State:
    """Per sub-env select: ``a[k][i]`` where ``mask[i]`` else ``b[k][i]``, for every key."""
    return {key: where_rows(mask, av, b[key]) for key, av in a.items()}


def one_hot_grid(y: torch.Tensor, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean ``(..., 10, 10)`` planes with a single cell ``(y, x)`` set.

    ``y`` and ``x`` are integer tensors of equal shape; where ``valid`` is false (or a
    coordinate lies off the grid) the plane stays empty.
    """
    inside = (y >= 0) & (y < GRID) & (x >= 0) & (x < GRID)
    if valid is not None:
        inside = inside & valid
    rows = torch.arange(GRID, device=y.device)
    plane = (y.unsqueeze(-1) == rows).unsqueeze(-1) & (x.unsqueeze(-1) == rows).unsqueeze(-2)
    return plane & inside.unsqueeze(-1).unsqueeze(-1)


def paint(batch: int, n_channels: int, cells, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Planes ``(batch, n_channels, 10, 10)`` of ``dtype`` (default float32) with the listed cells set to 1.

    ``cells`` is a sequence of ``(channel, y, x, valid)``: ``channel`` an int or an
    integer tensor, ``y``/``x`` integer tensors of shape ``(batch,)`` or ``(batch, k)``
    and ``valid`` a bool tensor of the same shape or None. Cells off the grid or not
    valid are left out. One scatter for all cells, so rendering costs a few kernels
    whatever the number of objects.
    """
    index, value = [], []
    for channel, y, x, valid in cells:
        ok = (y >= 0) & (y < GRID) & (x >= 0) & (x < GRID)
        if valid is not None:
            ok = ok & valid
        flat = channel * (GRID * GRID) + y * GRID + x
        index.append(torch.where(ok, flat, 0).reshape(batch, -1))
        value.append(ok.reshape(batch, -1))
    # Eager: painted directly in ``dtype`` (a conversion pass costs more than the
    # scatter). Under torch.compile: on a uint8 canvas, whose conversion fuses into the
    # output write (inductor's float32 scatter-max was 3-6x slower on CPU).
    # A left-out cell writes 0 to cell 0, which "amax" makes harmless.
    canvas = torch.uint8 if torch.compiler.is_compiling() else dtype
    planes = torch.zeros((batch, n_channels * GRID * GRID), dtype=canvas, device=device)
    planes.scatter_reduce_(1, torch.cat(index, dim=1), torch.cat(value, dim=1).to(canvas), reduce="amax")
    return planes.to(dtype).view(batch, n_channels, GRID, GRID)


class MinAtarEnv(TensorEnv):
    """Base class of the batched MinAtar games (arXiv 1903.03176; rules of ``minatar`` 1.0.15).

    Args (``num_envs``, ``device``, ``seed`` may be positional; the rest are keyword-only):
        num_envs: number of sub-environments stepped together (default 1).
        device: torch device of every tensor (default ``"cpu"``).
        seed: seed of the env's ``torch.Generator`` (default None: a random seed).
        full_action_space: False (default) exposes the game's minimal action set, in
            the reference's ``minimal_action_set()`` order, mapped to the full indices
            (n, l, u, r, d, f) = (0..5); True exposes all 6 actions.
        sticky_action_prob: probability of repeating the previous action (default 0.1,
            as the reference).
        difficulty_ramping: speed-up of spawns/movement over time in the games that
            ramp (Asterix, Seaquest, SpaceInvaders; default True, as the reference).
        pad_channels_to: pad observation channels with zero planes up to this count
            (default None: the game's own count). Sequential MinAtar streams use 10
            (Seaquest's count) for every game.
        max_episode_steps: truncate episodes after this many steps (default None: no
            time limit, as the reference).
        obs_dtype: dtype of the observations: ``torch.uint8`` (default), ``torch.float32``
            or ``torch.bool`` (or their names ``"uint8"``, ``"float32"``, ``"bool"``). The
            one-byte dtypes move a quarter of float32's memory per step; the values are
            the same 0/1 either way (convert to float in the network).
        compile: run the whole per-step function (sticky actions, rules, episode
            bookkeeping, automatic reset, rendering) through ``torch.compile``
            (default False). The uniforms are drawn outside, so the compiled function
            is pure and has no graph break; the first step pays the compilation.

    Observations are ``(num_envs, C, 10, 10)`` in {0, 1} (dtype ``obs_dtype``), channels in the
    reference's order (``channel_names``). ``info`` holds ``episode_return``,
    ``episode_length`` and ``done`` (see :class:`normrl.envs.base.TensorEnv`); with
    ``max_episode_steps`` set it also holds ``final_obs``, the observation each step
    produced before the automatic reset (needed to bootstrap at truncation); see
    :class:`normrl.envs.episode_stats.EpisodeStats`.

    Subclasses define ``game`` (the reference module name), ``channel_names``,
    ``minimal_action_set``, ``reset_draw_shapes``, ``step_draw_shapes`` and the pure
    methods :meth:`initial_state`, :meth:`transition` and :meth:`render`.
    """

    game: str = ""
    channel_names: tuple[str, ...] = ()
    minimal_action_set: tuple[int, ...] = ()
    #: per-sub-env shapes of the uniforms a fresh episode needs
    reset_draw_shapes: dict[str, tuple[int, ...]] = {}
    #: per-sub-env shapes of the uniforms one step of the rules needs
    step_draw_shapes: dict[str, tuple[int, ...]] = {}

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        *,
        full_action_space: bool = False,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
        pad_channels_to: int | None = None,
        max_episode_steps: int | None = None,
        obs_dtype: torch.dtype | str = torch.uint8,
        compile: bool = False,
    ):
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not 0.0 <= float(sticky_action_prob) <= 1.0:
            raise ValueError(f"sticky_action_prob must be in [0, 1], got {sticky_action_prob!r}")
        n_channels = len(self.channel_names)
        if pad_channels_to is not None and (not isinstance(pad_channels_to, int) or pad_channels_to < n_channels):
            raise ValueError(
                f"pad_channels_to must be None or an int >= {n_channels} ({self.game} has {n_channels} channels), "
                f"got {pad_channels_to!r}"
            )
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be None or a positive int, got {max_episode_steps!r}")
        obs_dtype = OBS_DTYPES.get(obs_dtype, obs_dtype) if isinstance(obs_dtype, str) else obs_dtype
        if obs_dtype not in OBS_DTYPES.values():
            raise ValueError(f"obs_dtype must be one of {', '.join(OBS_DTYPES)} (or the torch dtypes), got {obs_dtype!r}")
        self.obs_dtype = obs_dtype
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.full_action_space = bool(full_action_space)
        self.sticky_action_prob = float(sticky_action_prob)
        self.difficulty_ramping = bool(difficulty_ramping)
        self.n_channels = n_channels
        self.obs_channels = pad_channels_to if pad_channels_to is not None else n_channels
        self.max_episode_steps = max_episode_steps
        actions = tuple(range(len(FULL_ACTION_NAMES))) if self.full_action_space else tuple(self.minimal_action_set)
        #: policy action index -> full action index (n, l, u, r, d, f)
        self.action_set = torch.tensor(actions, dtype=torch.int64, device=self.device)
        self.single_observation_space = gym.spaces.Box(
            0, 1, (self.obs_channels, GRID, GRID), dtype=str(obs_dtype).removeprefix("torch."))
        self.single_action_space = gym.spaces.Discrete(len(actions))
        self.compile = bool(compile)
        self._step_fn = self._compiled_step() if self.compile else self.pure_step
        self.generator = torch.Generator(device=self.device)
        self._seed(seed)
        self.reset()

    # ------------------------------------------------------------------ game hooks
    def initial_state(self, draws: dict[str, torch.Tensor]) -> State:
        """Fresh-episode states for a batch, from the reset uniforms ``draws``."""
        raise NotImplementedError

    def transition(self, state: State, action: torch.Tensor, draws: dict[str, torch.Tensor]) -> tuple[State, torch.Tensor, torch.Tensor]:
        """One step of the rules: ``(next_state, reward float32, terminal bool)``.

        ``action`` holds full-set indices (after sticky actions); pure, no side effects.
        """
        raise NotImplementedError

    def render(self, state: State) -> torch.Tensor:
        """Observation planes ``(batch, n_channels, 10, 10)`` in {0, 1} (bool, uint8 or
        float32; ideally ``self.obs_dtype``, which saves a conversion) of ``state``;
        :func:`paint` builds them in one scatter."""
        raise NotImplementedError

    def merge_reset(self, done: torch.Tensor, next_state: State, reset_draws: dict[str, torch.Tensor]) -> State:
        """``next_state`` with fresh episodes (from ``reset_draws``) in the sub-envs where ``done``.

        Default: :func:`where_state` over :meth:`initial_state`; a game whose fresh state
        is cheaper to merge in (e.g. constant) may override it.
        """
        return where_state(done, self.initial_state(reset_draws), next_state)

    def _compiled_step(self):
        """``torch.compile(self.pure_step)``; on CPU with inductor's scalar C++ loops.

        On the machines this was measured on (x86 with AVX-512), inductor's vectorized
        CPU code for these integer/bool-heavy kernels (masked partial-row loads, index
        gathers, bool<->uint8 mask casts) ran 2x (Freeway, Asterix) to 10-50x (Breakout)
        slower than its scalar loops, which gcc still auto-vectorizes where it can;
        ``cpp.simdlen=1`` selects the scalar loops for this function only. CUDA
        (Triton) is unaffected.
        """
        options = {"cpp.simdlen": 1} if self.device.type == "cpu" else None
        return torch.compile(self.pure_step, fullgraph=True, options=options)

    # ------------------------------------------------------------------ randomness
    def _seed(self, seed: int | None) -> None:
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def _uniforms(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
        n = self.num_envs
        sizes = [math.prod(s) for s in shapes.values()]
        flat = torch.rand((n, sum(sizes)), generator=self.generator, device=self.device)
        out, start = {}, 0
        for (name, shape), size in zip(shapes.items(), sizes):
            out[name] = flat[:, start : start + size].reshape((n, *shape))
            start += size
        return out

    def sample_draws(self) -> Draws:
        """All uniforms one :meth:`step` may need, from the env's generator."""
        return {
            "sticky": torch.rand(self.num_envs, generator=self.generator, device=self.device),
            "step": self._uniforms(self.step_draw_shapes),
            "reset": self._uniforms(self.reset_draw_shapes),
        }

    # ------------------------------------------------------------------ TensorEnv API
    def observe(self, state: State | None = None) -> torch.Tensor:
        """Observation ``(batch, obs_channels, 10, 10)`` of ``state`` (default: current), dtype ``obs_dtype``."""
        planes = self.render(self.state if state is None else state).to(self.obs_dtype)
        if self.obs_channels > self.n_channels:
            pad = planes.new_zeros((planes.shape[0], self.obs_channels - self.n_channels, GRID, GRID))
            planes = torch.cat([planes, pad], dim=1)
        return planes

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start fresh episodes in every sub-env (reseeding first if ``seed`` is given).

        Also clears the episode totals and sets the previous action (for sticky
        actions) to no-op, like constructing a new reference ``Environment``; the
        automatic resets inside :meth:`step` keep the previous action, like the
        reference's ``reset()``.
        """
        if seed is not None:
            self._seed(seed)
        self.state = self.initial_state(self._uniforms(self.reset_draw_shapes))
        self.last_action = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self.stats = EpisodeStats(self.num_envs, self.device)
        return self.observe()

    def step(self, actions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every sub-env by one step with policy ``actions`` (shape ``(num_envs,)``)."""
        return self.step_with_draws(actions, self.sample_draws())

    def step_with_draws(self, actions, draws: Draws):
        """:meth:`step` with explicit uniforms ``draws`` (see :meth:`sample_draws`)."""
        actions = torch.as_tensor(actions, device=self.device).long().reshape(self.num_envs)
        (self.state, self.last_action, self.stats.returns, self.stats.lengths,
         obs, reward, terminated, truncated, info) = self._step_fn(
            self.state, self.last_action, self.stats.returns, self.stats.lengths, actions, draws)
        return obs, reward, terminated, truncated, info

    def pure_step(self, state: State, last_action: torch.Tensor, returns: torch.Tensor, lengths: torch.Tensor,
                  actions: torch.Tensor, draws: Draws):
        """The whole step as a pure function of tensors (what ``compile=True`` compiles).

        Returns ``(next_state, executed_action, returns, lengths, obs, reward,
        terminated, truncated, info)``: the state after the automatic reset, the
        executed full-set actions (the next "previous action"), the running episode
        totals after the step (zeroed where done), and the step's outputs. The info
        dict is the one :class:`EpisodeStats` builds.
        """
        chosen = self.action_set[actions]
        executed = torch.where(draws["sticky"] < self.sticky_action_prob, last_action, chosen)
        next_state, reward, terminated = self.transition(state, executed, draws["step"])
        returns = returns + reward.to(returns.dtype)
        lengths = lengths + 1
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = ~terminated & (lengths >= self.max_episode_steps)
        done = terminated | truncated
        info = {"done": done, "episode_return": returns, "episode_length": lengths}
        if self.max_episode_steps is not None:
            info["final_obs"] = self.observe(next_state)
        state = self.merge_reset(done, next_state, draws["reset"])
        return (state, executed, returns.masked_fill(done, 0), lengths.masked_fill(done, 0),
                self.observe(state), reward, terminated, truncated, info)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: game state, previous action, episode
        totals and the generator state."""
        return {
            "game": self.game,
            "num_envs": self.num_envs,
            "state": {k: v.clone() for k, v in self.state.items()},
            "last_action": self.last_action.clone(),
            "episode_stats": self.stats.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("game") != self.game or state.get("num_envs") != self.num_envs:
            raise ValueError(
                f"state is for game={state.get('game')!r} num_envs={state.get('num_envs')!r}, "
                f"this env is game={self.game!r} num_envs={self.num_envs}"
            )
        if set(state["state"]) != set(self.state):
            raise ValueError(f"state keys {sorted(state['state'])} do not match {sorted(self.state)}")
        self.state = {k: v.to(self.device).clone() for k, v in state["state"].items()}
        self.last_action = state["last_action"].to(self.device).clone()
        self.stats.load_state_dict(state["episode_stats"])
        self.generator.set_state(state["generator"])
