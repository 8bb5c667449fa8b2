"""The evaluation loop behind :meth:`normrl.agents.common.base.AgentBase.evaluate`.

Steps run in blocks of :data:`BLOCK` batched steps. Within a block nothing waits for the
host: each step's ``done`` flags and episode returns are copied into a ``(BLOCK, N)``
buffer, and after the block one cumulative sum counts the episodes each sub-env
finished (keeping its first ``quota``) and one host read decides whether all episodes
are in (then ``should_stop`` is polled). Envs with a functional view
(:mod:`normrl.agents.common.functional_env`) run a block as one function of tensors,
compiled when the agent's config has ``compile=True``; the others are stepped one
``env.step`` call at a time. On CPU both give the same episodes bit for bit.
"""
from __future__ import annotations

from typing import Callable

import torch

from normrl.agents.common.build import discrete_actions, make_generator
from normrl.agents.common.compiled_training import compiled_for_kind
from normrl.agents.common.functional_env import functional_env
from normrl.utils.errors import EvaluationInterrupted

#: batched steps between two checks of "all episodes in?" (and ``should_stop`` polls)
BLOCK = 16


def epsilon_draws(uniforms: torch.Tensor, epsilon: float, n_actions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(explore, random_actions)`` of a block from uniforms ``(K, 2, N)`` in ``[0, 1)``:
    per step and sub-env, whether to act randomly (probability ``epsilon``) and the
    uniformly random action to take then."""
    return uniforms[:, 0] < epsilon, (uniforms[:, 1] * n_actions).long().clamp(max=n_actions - 1)


def _block(agent, fenv, state, obs, env_noise, explore, random_actions):
    """``env_noise.shape[0]`` greedy (ε-greedy where ``explore`` is given) steps of a
    functional env; returns the env state, the next observation and the steps' ``done``
    flags and episode returns."""
    dones, returns = [], []
    for j in range(env_noise.shape[0]):
        actions = agent._act(obs, True)
        if explore is not None:
            actions = torch.where(explore[j], random_actions[j], actions)
        state, obs, _, _, _, info = fenv.step(state, actions, env_noise[j])
        dones.append(info["done"])
        returns.append(info["episode_return"])
    return state, obs, torch.stack(dones), torch.stack(returns)


def run_evaluation(agent, env, episodes: int, deterministic: bool, seed: int | None, max_steps: int,
                   should_stop: Callable[[], bool] | None, epsilon: float, epsilon_seed: int | None) -> float:
    """The loop of :meth:`~normrl.agents.common.base.AgentBase.evaluate` (arguments
    checked there; networks already in eval mode, gradients off)."""
    n, device = env.num_envs, torch.device(env.device)
    quota = torch.tensor([episodes // n + (i < episodes % n) for i in range(n)], device=device)
    counted = torch.zeros(n, dtype=torch.long, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    eps_gen, n_actions = None, 0
    if epsilon > 0:
        eps_gen = make_generator(device, epsilon_seed if epsilon_seed is not None else (seed if seed is not None else 0))
        n_actions = discrete_actions(env)
    obs = env.reset(seed=seed)
    fenv = functional_env(env) if deterministic else None
    block_fn = None
    if fenv is not None:
        block_fn = compiled_for_kind(_block, fenv) if getattr(agent.config, "compile", False) else _block
        state = fenv.get_state()
    else:
        done_buf = torch.zeros((BLOCK, n), dtype=torch.bool, device=device)
        return_buf = torch.zeros((BLOCK, n), dtype=torch.float64, device=device)
    steps = 0
    try:
        while steps < max_steps:
            k = min(BLOCK, max_steps - steps)
            explore = random_actions = None
            if eps_gen is not None:
                explore, random_actions = epsilon_draws(torch.rand((k, 2, n), generator=eps_gen, device=device), epsilon, n_actions)
            if block_fn is not None:
                if block_fn is not _block and device.type == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()
                state, obs, dones, returns = block_fn(agent, fenv, state, obs, fenv.draw(k), explore, random_actions)
                if block_fn is not _block and device.type == "cuda":  # CUDA-graph outputs are overwritten by the next replay
                    state, obs = torch.utils._pytree.tree_map(torch.clone, (state, obs))
            else:
                for j in range(k):
                    actions = agent._act(obs, deterministic)
                    if explore is not None:
                        actions = torch.where(explore[j], random_actions[j], actions)
                    obs, _, _, _, info = env.step(actions)
                    done_buf[j].copy_(info["done"])
                    return_buf[j].copy_(info["episode_return"])
                dones, returns = done_buf[:k], return_buf[:k]
            # the i-th episode a sub-env finishes counts while i <= its quota
            finished = dones.long()
            rank = counted + finished.cumsum(0)
            total += torch.where(dones & (rank <= quota), returns.double(), 0.0).sum()
            counted += finished.sum(0)
            steps += k
            if bool((counted >= quota).all()):
                return float(total) / episodes
            if should_stop is not None and should_stop():
                raise EvaluationInterrupted(f"evaluation stopped after {steps} steps")
    finally:
        if fenv is not None:
            fenv.set_state(state)
    raise ValueError(f"evaluate: {episodes} episodes did not finish within {max_steps} steps")
