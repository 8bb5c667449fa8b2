"""Pure-function views of normrl's tensor envs, for rollouts in chunks of K steps.

A chunked rollout (:mod:`normrl.agents.ppo.rollout`) draws the randomness of K env
steps at once, then runs K steps of policy + env as one function of tensors, which
``torch.compile`` can turn into one graph. :func:`functional_env` gives that view of an
env, or None for envs whose step is not pure tensor code (Atari, gymnasium adapters,
MinAtar Seaquest while it resizes its enemy lists on the host between steps, its CPU
default); the rollout then steps those envs one call at a time.

A :class:`FunctionalEnv` has

* ``get_state()`` / ``set_state(state)``: the env's dynamic state as a tuple of tensors
  (read after ``reset``; written back after every chunk, so ``env.state_dict()`` and the
  next ``env.step`` continue from it);
* ``draw(k)``: the uniforms ``k`` consecutive ``env.step`` calls would draw, from the
  env's own generator. On CPU, torch draws random numbers serially, so one draw of
  ``k`` steps' worth equals ``k`` draws of one step each: a chunked rollout then
  reproduces ``env.step`` bit for bit. (On CUDA the Philox offsets differ, so there a
  chunked rollout equals a per-step one in distribution only; the agents use the
  chunked form in eager and compiled mode alike, so those two stay equal.)
* ``step(state, actions, noise)``: one step of every sub-env, pure; returns
  ``(state, obs, reward, terminated, truncated, info)`` with the ``info`` keys of the
  TensorEnv contract (``done``, ``episode_return``, ``episode_length``, and
  ``final_obs`` when ``has_final_obs``).
* ``compile_options``: inductor options for graphs that contain this env's step;
* ``merge_draws(draws)`` and ``widened(num_envs)``: for a batch of blocks of this env
  kind stepped as one (:class:`SeedBlocksFunctional`, the env of a seed axis), the
  blocks' draws laid out as one env of all their sub-envs draws them, and this view
  stepping ``num_envs`` sub-envs.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch

Info = dict[str, torch.Tensor]


class FunctionalEnv:
    """Base of the adapters (see the module docstring)."""

    env: Any
    has_final_obs: bool = False
    compile_options: dict[str, Any] | None = None

    def get_state(self) -> tuple:
        raise NotImplementedError

    def set_state(self, state: tuple) -> None:
        raise NotImplementedError

    def draw(self, k: int) -> torch.Tensor:
        raise NotImplementedError

    def step(self, state: tuple, actions: torch.Tensor, noise: torch.Tensor):
        raise NotImplementedError

    def merge_draws(self, draws: list) -> torch.Tensor:
        """The ``draw(k)`` of several blocks of this env (in block order) as one env of all
        their sub-envs would lay them out; default: concatenated along the sub-env axis 1."""
        return torch.cat(draws, dim=1)

    def widened(self, num_envs: int) -> "FunctionalEnv":
        """This view stepping ``num_envs`` sub-envs (blocks of this env side by side)."""
        raise NotImplementedError(f"{type(self).__name__} cannot step a batch of blocks")


class CartPoleFunctional(FunctionalEnv):
    """:class:`~normrl.envs.cartpole.CartPoleEnv`: state ``(physics, returns, lengths)``;
    noise ``(N, 4)`` reset-state candidates per step, drawn like ``env.step`` draws them."""

    has_final_obs = True

    def __init__(self, env):
        self.env = env

    def get_state(self) -> tuple:
        e = self.env
        if e.state is None:
            raise RuntimeError("call env.reset() before a chunked rollout")
        return (e.state, e.stats.returns, e.stats.lengths)

    def set_state(self, state: tuple) -> None:
        self.env.state, self.env.stats.returns, self.env.stats.lengths = state

    def draw(self, k: int) -> torch.Tensor:
        from normrl.envs.cartpole import RESET_HIGH, RESET_LOW

        e = self.env
        noise = torch.empty((k, e.num_envs, 4), device=e.device, dtype=e.dtype)
        return noise.uniform_(RESET_LOW, RESET_HIGH, generator=e.generator)

    def step(self, state: tuple, actions: torch.Tensor, noise: torch.Tensor):
        from normrl.envs.cartpole import cartpole_transition

        physics, returns, lengths = state
        physics, reward, terminated, truncated, final_state = cartpole_transition(
            physics, actions, noise, lengths, self.env.max_episode_steps)
        info = _episode_info(returns, lengths, reward, terminated, truncated)
        info["final_obs"] = final_state.to(torch.float32)
        state = (physics, info["episode_return"].masked_fill(info["done"], 0), info["episode_length"].masked_fill(info["done"], 0))
        return state, physics.to(torch.float32, copy=True), reward, terminated, truncated, info

    def widened(self, num_envs: int) -> "CartPoleFunctional":
        return self  # the step does not depend on the batch size


def _episode_info(returns, lengths, reward, terminated, truncated) -> Info:
    """What :meth:`normrl.envs.episode_stats.EpisodeStats.update` reports (float32 returns)."""
    return {"done": terminated | truncated, "episode_return": returns + reward.to(returns.dtype), "episode_length": lengths + 1}


class MinAtarFunctional(FunctionalEnv):
    """A :class:`~normrl.envs.minatar.common.MinAtarEnv`: state ``(game state dict,
    previous action, returns, lengths)``; noise one row of uniforms per step laid out as
    ``sample_draws`` consumes them (sticky, the game's step draws, its reset draws)."""

    def __init__(self, env):
        self.env = env
        self.has_final_obs = env.max_episode_steps is not None
        n = env.num_envs
        self._step_sizes = [math.prod(s) for s in env.step_draw_shapes.values()]
        self._reset_sizes = [math.prod(s) for s in env.reset_draw_shapes.values()]
        self._width = n * (1 + sum(self._step_sizes) + sum(self._reset_sizes))
        # the env's own compiled step runs inductor's scalar CPU loops (see MinAtarEnv._compiled_step)
        self.compile_options = {"cpp.simdlen": 1} if env.device.type == "cpu" else None

    def get_state(self) -> tuple:
        e = self.env
        return (dict(e.state), e.last_action, e.stats.returns, e.stats.lengths)

    def set_state(self, state: tuple) -> None:
        e = self.env
        e.state, e.last_action, e.stats.returns, e.stats.lengths = dict(state[0]), state[1], state[2], state[3]

    def draw(self, k: int) -> torch.Tensor:
        e = self.env
        return torch.rand((k, self._width), generator=e.generator, device=e.device)

    def _split(self, row: torch.Tensor, shapes: dict, sizes: list, start: int) -> tuple[dict, int]:
        n = self.env.num_envs
        total = sum(sizes)
        block = row[start : start + n * total].view(n, total)
        out, col = {}, 0
        for (name, shape), size in zip(shapes.items(), sizes):
            out[name] = block[:, col : col + size].reshape((n, *shape))
            col += size
        return out, start + n * total

    def step(self, state: tuple, actions: torch.Tensor, noise: torch.Tensor):
        e = self.env
        n = e.num_envs
        step_draws, at = self._split(noise, e.step_draw_shapes, self._step_sizes, n)
        reset_draws, _ = self._split(noise, e.reset_draw_shapes, self._reset_sizes, at)
        draws = {"sticky": noise[:n], "step": step_draws, "reset": reset_draws}
        game, executed, returns, lengths, obs, reward, terminated, truncated, info = e.pure_step(
            state[0], state[1], state[2], state[3], actions, draws)
        return (game, executed, returns, lengths), obs, reward, terminated, truncated, info

    def merge_draws(self, draws: list) -> torch.Tensor:
        n = self.env.num_envs
        bounds = [0, n, n * (1 + sum(self._step_sizes)), self._width]
        return torch.cat([torch.cat([d[:, lo:hi] for d in draws], dim=1) for lo, hi in zip(bounds, bounds[1:])], dim=1)

    def widened(self, num_envs: int) -> "MinAtarFunctional":
        # a shallow copy of the game with the batch size changed: its pure step reads
        # num_envs (fresh episodes); everything else is shared and never written by it
        wide = copy.copy(self.env)
        wide.num_envs = num_envs
        return MinAtarFunctional(wide)


class PermutedObservationsFunctional(FunctionalEnv):
    """:class:`~normrl.envs.wrappers.PermutedObservations` over a functional env."""

    def __init__(self, env, inner: FunctionalEnv):
        self.env, self.inner = env, inner
        self.has_final_obs, self.compile_options = inner.has_final_obs, inner.compile_options
        self.get_state, self.set_state, self.draw = inner.get_state, inner.set_state, inner.draw

    def step(self, state, actions, noise):
        state, obs, reward, terminated, truncated, info = self.inner.step(state, actions, noise)
        if "final_obs" in info:
            info = dict(info, final_obs=self.env.permute(info["final_obs"]))
        return state, self.env.permute(obs), reward, terminated, truncated, info


class PermutedActionsFunctional(FunctionalEnv):
    """:class:`~normrl.envs.wrappers.PermutedActions` over a functional env."""

    def __init__(self, env, inner: FunctionalEnv):
        self.env, self.inner = env, inner
        self.has_final_obs, self.compile_options = inner.has_final_obs, inner.compile_options
        self.get_state, self.set_state, self.draw = inner.get_state, inner.set_state, inner.draw

    def step(self, state, actions, noise):
        return self.inner.step(state, self.env._index[actions], noise)


class ForwardingFunctional(FunctionalEnv):
    """A plain :class:`~normrl.envs.wrappers.TensorEnvWrapper` (forwards everything)."""

    def __init__(self, env, inner: FunctionalEnv):
        self.env, self.inner = env, inner
        self.has_final_obs, self.compile_options = inner.has_final_obs, inner.compile_options
        self.get_state, self.set_state, self.draw, self.step = inner.get_state, inner.set_state, inner.draw, inner.step


class SeedBlocksFunctional(FunctionalEnv):
    """A :class:`~normrl.envs.SeedBlocks` (one env per seed) stepped as one batch of all
    its sub-envs: the blocks' states side by side (block k on rows ``k*N:(k+1)*N``),
    each block's uniforms drawn from its own generator (so block k draws what a single
    run with that env draws) and merged as one env of ``S * N`` sub-envs lays them out.

    Between chunks the joint state stays joint (:meth:`SeedBlocks.hold_joint_state`);
    the blocks get their parts back when something reads or steps them one by one.
    """

    def __init__(self, env, blocks: list):
        self.env, self.blocks = env, blocks
        self.inner = blocks[0].widened(env.num_envs)
        self.has_final_obs, self.compile_options = self.inner.has_final_obs, self.inner.compile_options
        self.step = self.inner.step

    def get_state(self) -> tuple:
        joint = self.env.joint_state()
        if joint is not None:
            return joint
        return torch.utils._pytree.tree_map(lambda *parts: _cat_envs(parts), *[b.get_state() for b in self.blocks])

    def set_state(self, state: tuple) -> None:
        self.env.hold_joint_state(state, self._write_blocks)

    def _write_blocks(self, state: tuple) -> None:
        leaves, spec = torch.utils._pytree.tree_flatten(state)
        parts = [t.split(self.env.envs_per_seed) for t in leaves]
        for k, block in enumerate(self.blocks):
            block.set_state(torch.utils._pytree.tree_unflatten([p[k].clone() for p in parts], spec))  # own storage

    def draw(self, k: int) -> torch.Tensor:
        return self.blocks[0].merge_draws([b.draw(k) for b in self.blocks])


def _cat_envs(parts) -> torch.Tensor:
    """``torch.cat(parts)`` along the sub-env axis 0, keeping the memory order of the
    first part's dimensions (Seaquest keeps its entity lists env-innermost)."""
    first = parts[0]
    order = sorted(range(first.dim()), key=lambda d: -first.stride(d)) if first.dim() > 1 else [0]
    joined = torch.cat([p.permute(order) for p in parts], dim=order.index(0))
    return joined.permute([order.index(d) for d in range(first.dim())])


def functional_env(env) -> FunctionalEnv | None:
    """The :class:`FunctionalEnv` of ``env``, or None when its step is not pure tensor code."""
    from normrl.envs.cartpole import CartPoleEnv
    from normrl.envs.minatar.common import MinAtarEnv
    from normrl.envs.seed_blocks import SeedBlocks
    from normrl.envs.wrappers import PermutedActions, PermutedObservations, TensorEnvWrapper

    if isinstance(env, SeedBlocks):  # plain CartPole / MinAtar blocks only (each seed's wrappers may differ)
        if not all(type(b) is CartPoleEnv or isinstance(b, MinAtarEnv) for b in env.blocks):
            return None
        blocks = [functional_env(b) for b in env.blocks]
        return None if any(b is None for b in blocks) else SeedBlocksFunctional(env, blocks)
    if type(env) is CartPoleEnv:
        return CartPoleFunctional(env)
    if isinstance(env, MinAtarEnv):
        # a game that overrides the step wrapper is not pure, unless all the override
        # does is off (Seaquest with fixed list widths: dynamic_capacity=False, its
        # default on CUDA and with compile=True)
        if type(env).step_with_draws is not MinAtarEnv.step_with_draws and getattr(env, "dynamic_capacity", True):
            return None
        return MinAtarFunctional(env)
    if isinstance(env, TensorEnvWrapper):
        inner = functional_env(env.env)
        if inner is None:
            return None
        if type(env) is PermutedObservations:
            return PermutedObservationsFunctional(env, inner)
        if type(env) is PermutedActions:
            return PermutedActionsFunctional(env, inner)
        if type(env).step is TensorEnvWrapper.step and type(env).reset is TensorEnvWrapper.reset:
            return ForwardingFunctional(env, inner)
    return None
