"""Generalized Advantage Estimation (Schulman et al. 2015, arXiv 1506.02438).

With ``done_t`` true when the transition at step ``t`` ended an episode (terminated
*or* truncated) and ``V_{T} = next_value`` (the value of the observation after the
rollout):

    delta_t = r_t + gamma * V_{t+1} * (1 - done_t) - V_t
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
    R_t     = A_t + V_t                     (the value target)

Truncation is handled by the caller before this function: on a truncated step the
reward is augmented with ``gamma * V(final_obs)`` (the value of the true last
observation, not of the reset observation the env returned), so cutting the recursion
at every episode end is correct for both kinds of ending.
"""
from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets of a ``(T, N)`` rollout.

    Args:
        rewards: ``(T, N)`` rewards (truncation bootstrap already added).
        values: ``(T, N)`` value estimates of the observations the actions were taken in.
        dones: ``(T, N)`` episode ended at this step (bool or 0/1 float).
        next_value: ``(N,)`` value of the observation following the last step.
        gamma: discount in [0, 1].
        gae_lambda: GAE lambda in [0, 1].

    Returns:
        ``(advantages, returns)``, both ``(T, N)`` with ``returns = advantages + values``.
    """
    if rewards.shape != values.shape or rewards.shape != dones.shape or rewards.dim() != 2:
        raise ValueError(f"rewards, values, dones must share a (T, N) shape, got {tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(dones.shape)}")
    if next_value.shape != rewards.shape[1:]:
        raise ValueError(f"next_value must have shape {tuple(rewards.shape[1:])}, got {tuple(next_value.shape)}")
    not_done = 1.0 - dones.to(values.dtype)
    advantages = torch.empty_like(values)
    last = torch.zeros_like(next_value)
    num_steps = rewards.shape[0]
    for t in reversed(range(num_steps)):
        next_v = next_value if t == num_steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_v * not_done[t] - values[t]
        last = delta + gamma * gae_lambda * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values
