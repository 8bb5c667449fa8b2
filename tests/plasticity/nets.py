"""Small networks and training loops shared by the plasticity tests."""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.networks import MLP
from normrl.normalization import NaPProjector, ProjectedOptimizer


def nap_mlp(in_dim: int = 6, out_dim: int = 3, hidden=(16, 16), lr: float = 1e-2, seed: int = 0):
    """``MLP(norm="nap")`` and ``ProjectedOptimizer(Adam, NaPProjector(model))``."""
    torch.manual_seed(seed)
    model = MLP(in_dim, out_dim, hidden=hidden, norm="nap")
    opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=lr), NaPProjector(model))
    return model, opt


def ln_mlp(in_dim: int = 6, out_dim: int = 3, hidden=(16, 16), lr: float = 1e-2, seed: int = 0, **adam):
    """``MLP(norm="layernorm")`` with a plain Adam."""
    torch.manual_seed(seed)
    model = MLP(in_dim, out_dim, hidden=hidden, norm="layernorm")
    return model, torch.optim.Adam(model.parameters(), lr=lr, **adam)


class TwoHeads(nn.Module):
    """Separate actor and critic chains (PPO's non-shared actor-critic shape)."""

    def __init__(self, in_dim: int = 6, n_actions: int = 3) -> None:
        super().__init__()
        self.actor = nn.Sequential(nn.Linear(in_dim, 8), nn.Tanh(), nn.Linear(8, n_actions))
        self.critic = nn.Sequential(nn.Linear(in_dim, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x):
        return torch.cat([self.actor(x), self.critic(x)], dim=-1)


def batch(step: int, n: int = 32, in_dim: int = 6) -> torch.Tensor:
    """A deterministic input batch for update ``step``."""
    return torch.randn(n, in_dim, generator=torch.Generator().manual_seed(1000 + step))


def train_step(model, opt, interventions, step: int) -> torch.Tensor:
    """One update with the documented calling contract; returns the loss."""
    x = batch(step, in_dim=model[0].in_features if isinstance(model, nn.Sequential) else 6)
    loss = (model(x) - 1.0).square().mean()
    if interventions is not None:
        loss = loss + interventions.penalty()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if interventions is not None:
        interventions.after_step(step)
    return loss.detach()


def snapshot(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}
