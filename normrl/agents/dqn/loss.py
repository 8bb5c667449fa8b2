"""The (Double) DQN temporal-difference loss and target-network updates."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def td_targets(q_next_online: torch.Tensor | None, q_next_target: torch.Tensor, rewards: torch.Tensor, discounts: torch.Tensor) -> torch.Tensor:
    """``r + discount * Q_target(s', a*)``; ``a* = argmax Q_online(s', .)`` (Double DQN,
    van Hasselt et al. 2016, arXiv 1509.06461) when ``q_next_online`` is given, else
    ``argmax Q_target`` (the max of the target network, Mnih et al. 2015).
    ``discounts`` already hold ``gamma^m * (1 - terminated)``."""
    if q_next_online is None:
        next_values = q_next_target.max(-1).values
    else:
        next_values = q_next_target.gather(-1, q_next_online.argmax(-1, keepdim=True)).squeeze(-1)
    return rewards + discounts * next_values


def td_loss(q_taken: torch.Tensor, targets: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean ``"mse"`` or ``"huber"`` (smooth L1, delta 1) loss between Q(s, a) and targets."""
    if kind == "mse":
        return F.mse_loss(q_taken, targets)
    if kind == "huber":
        return F.smooth_l1_loss(q_taken, targets)
    raise ValueError(f"loss must be 'mse' or 'huber', got {kind!r}")


@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- tau * online + (1 - tau) * target`` for parameters (``tau=1``: hard
    copy); buffers (e.g. ``running_*`` statistics) are copied."""
    t_params, o_params = list(target.parameters()), list(online.parameters())
    if tau >= 1.0:
        torch._foreach_copy_(t_params, o_params)
    else:
        torch._foreach_lerp_(t_params, o_params, tau)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)
