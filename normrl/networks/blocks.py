"""Building blocks shared by the networks: activation lookup, norm resolution (with
the Normalize-and-Project flag) and input casting."""
from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn as nn

from normrl.normalization.registry import NormSpec, get_norm_layer, norm_name

#: Activation names accepted by the networks, mapped to their module classes.
ACTIVATIONS: dict[str, type] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "selu": nn.SELU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (ValueError listing the valid names)."""
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name.lower()]()


def resolve_norm(norm: NormSpec) -> tuple[Callable[..., nn.Module] | None, bool]:
    """``(constructor, nap)`` for a ``norm=`` argument.

    The constructor is ``None`` when the norm is the identity (``None`` or ``"none"``):
    the networks then insert no module at all, so ``Linear -> activation`` chains stay
    visible to :func:`~normrl.normalization.apply_nap`. ``nap`` is True for norms
    whose class sets ``nap = True`` (``norm="nap"``): the layers feeding them are built
    without bias.
    """
    if norm_name(norm) == "none":
        return None, False
    ctor = get_norm_layer(norm)
    target = ctor.func if isinstance(ctor, functools.partial) else ctor
    return ctor, bool(getattr(target, "nap", False))


def check_positive(name: str, value) -> int:
    """``value`` as an int if it is a positive integer, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class InputToFloat(nn.Module):
    """Casts input to float32; ``uint8`` input is also multiplied by ``1/255`` when
    ``scale_uint8`` is True (Atari frames). Float input passes through unchanged."""

    def __init__(self, scale_uint8: bool = True):
        super().__init__()
        self.scale_uint8 = bool(scale_uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8 and self.scale_uint8:
            return x.float().mul_(1.0 / 255.0)
        return x if x.is_floating_point() else x.float()

    def extra_repr(self) -> str:
        return f"scale_uint8={self.scale_uint8}"
