"""PPO's actor-critic: policy logits and state value from one observation batch."""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.networks.build import build_network


def _last_linear(module: nn.Module) -> nn.Module:
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError("network has no nn.Linear output layer")
    return layers[-1]


class ActorCritic(nn.Module):
    """``forward(obs) -> (logits (B, n_actions), value (B,))``.

    Separate actor and critic networks (``shared=False``, CleanRL's CartPole setup) or
    one network with ``n_actions + 1`` outputs (``shared=True``; always for images,
    CleanRL's Atari setup). The policy head's weights are scaled by 0.01 at
    construction so the initial policy is near uniform (CleanRL initializes it with
    orthogonal gain 0.01); the output layers are never NaP-projected.
    """

    def __init__(self, obs_space, n_actions: int, norm="none", hidden=(64, 64), activation="tanh", shared: bool = False):
        super().__init__()
        self.n_actions = n_actions
        self.shared = shared or len(obs_space.shape) != 1
        if self.shared:
            self.body = build_network(obs_space, n_actions + 1, norm, hidden, activation)
            with torch.no_grad():
                _last_linear(self.body).weight[:n_actions].mul_(0.01)
        else:
            self.actor = build_network(obs_space, n_actions, norm, hidden, activation)
            self.critic = build_network(obs_space, 1, norm, hidden, activation)
            with torch.no_grad():
                _last_linear(self.actor).weight.mul_(0.01)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shared:
            out = self.body(obs)
            return out[:, : self.n_actions], out[:, self.n_actions]
        return self.actor(obs), self.critic(obs).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values ``(B,)`` only."""
        if self.shared:
            return self.body(obs)[:, self.n_actions]
        return self.critic(obs).squeeze(-1)


def sample_actions(logits: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from ``Categorical(logits)`` with the Gumbel-max trick using
    ``generator``; return ``(actions, log_probs)``."""
    return sample_actions_from_uniforms(logits, torch.rand(logits.shape, device=logits.device, generator=generator))


def sample_actions_from_uniforms(logits: torch.Tensor, uniforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_actions` with its uniforms in ``[0, 1)`` given (shape of ``logits``):
    ``argmax(logits - log(-log u))``; return ``(actions, log_probs)``. Pure, so a
    compiled rollout can take uniforms drawn for many steps at once."""
    gumbel = -torch.log(-torch.log(uniforms.clamp(min=1e-20)))
    actions = torch.argmax(logits + gumbel, dim=-1)
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return actions, log_probs
