"""Per-layer statistics of a model's weights: norm, distance from initialization,
gradient norm and effective learning rate, plus the entropy of a categorical policy.

A *layer* here is every ``nn.Linear`` / ``nn.Conv*`` module with a weight, named by its
``model.named_modules()`` name; its statistics are about its ``weight`` tensor only
(biases are small, absent under NaP, and have no meaningful "norm growth"). Every
function returns tensors on the model's device and never synchronizes with the host.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn
from torch.nn.modules.conv import _ConvNd

__all__ = [
    "weight_layers",
    "snapshot_weights",
    "weight_norms",
    "distance_from_init",
    "grad_norms",
    "effective_lr",
    "global_norm",
    "policy_entropy",
]


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: module}`` for every ``Linear``/``Conv`` module of ``model`` that has a
    weight, in ``named_modules()`` order (the output layer included)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, _ConvNd)) and isinstance(getattr(m, "weight", None), torch.Tensor)
    }


def _weights(layers: Mapping[str, nn.Module] | nn.Module) -> dict[str, torch.Tensor]:
    if isinstance(layers, nn.Module):
        layers = weight_layers(layers)
    return {name: m.weight for name, m in layers.items()}


def snapshot_weights(layers: Mapping[str, nn.Module] | nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies ``{name: W.clone()}`` of the layers' weights (a model or the
    output of :func:`weight_layers`)."""
    return {name: w.detach().clone() for name, w in _weights(layers).items()}


def weight_norms(layers: Mapping[str, nn.Module] | nn.Module) -> dict[str, torch.Tensor]:
    """Frobenius norm ``‖W‖`` of every layer's weight, 0-dim float32 tensors."""
    return {name: torch.linalg.vector_norm(w.detach().float()) for name, w in _weights(layers).items()}


def distance_from_init(layers: Mapping[str, nn.Module] | nn.Module, initial: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``‖W − W₀‖`` per layer, ``initial`` being a :func:`snapshot_weights` taken at
    initialization. Raises ``KeyError`` naming a layer missing from ``initial``."""
    out = {}
    for name, w in _weights(layers).items():
        if name not in initial:
            raise KeyError(f"layer {name!r} has no initial snapshot (snapshot has {sorted(initial)})")
        out[name] = torch.linalg.vector_norm(w.detach().float() - initial[name].float())
    return out


def grad_norms(layers: Mapping[str, nn.Module] | nn.Module) -> dict[str, torch.Tensor]:
    """``‖∇_W L‖`` per layer from the weights' current ``.grad`` (0 when the gradient is
    ``None``, e.g. after ``zero_grad(set_to_none=True)`` or for a frozen layer)."""
    out = {}
    for name, w in _weights(layers).items():
        g = w.grad
        out[name] = torch.zeros((), device=w.device) if g is None else torch.linalg.vector_norm(g.detach().float())
    return out


def effective_lr(layers: Mapping[str, nn.Module] | nn.Module, before: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Effective learning rate of the last update per layer: ``‖W_t − W_{t−1}‖ /
    ‖W_{t−1}‖``, with ``before`` the :func:`snapshot_weights` taken right before the
    update (Lyle et al. 2024, arXiv 2407.01800, the quantity NaP keeps on schedule).
    For plain SGD, ``W_t = W_{t−1} − η g`` gives ``η‖g‖/‖W_{t−1}‖``."""
    out = {}
    for name, w in _weights(layers).items():
        if name not in before:
            raise KeyError(f"layer {name!r} has no pre-update snapshot (snapshot has {sorted(before)})")
        w0 = before[name].float()
        delta = torch.linalg.vector_norm(w.detach().float() - w0)
        out[name] = delta / torch.linalg.vector_norm(w0).clamp_min(1e-30)
    return out


def global_norm(tensors: Mapping[str, torch.Tensor] | list) -> torch.Tensor:
    """``sqrt(Σ_i x_i²)`` of 0-dim norms: the norm of all tensors concatenated."""
    values = list(tensors.values()) if isinstance(tensors, Mapping) else list(tensors)
    if not values:
        raise ValueError("global_norm needs at least one tensor")
    return torch.linalg.vector_norm(torch.stack([v.float() for v in values]))


def policy_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the categorical policies ``softmax(logits)`` over a batch:
    ``mean_n −Σ_a π(a|x_n) log π(a|x_n)``. Uniform logits over ``n`` actions give
    ``log n``. ``logits``: ``(N, actions)`` or ``(actions,)``; 0-dim float32 result."""
    if not isinstance(logits, torch.Tensor) or logits.dim() not in (1, 2) or logits.shape[-1] == 0:
        raise ValueError(f"policy_entropy expects logits of shape (N, actions) or (actions,), got {getattr(logits, 'shape', logits)!r}")
    logp = torch.log_softmax(logits.detach().float(), dim=-1)
    p = logp.exp()
    # Masked actions (logit -inf) have p = 0 and contribute 0, not 0·(−inf) = nan.
    ent = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=-1)
    return ent.mean()
