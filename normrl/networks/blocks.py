"""Building blocks shared by the networks: activation lookup and norm resolution (with
the Normalize-and-Project flag)."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from normrl.normalization.registry import NormSpec, get_norm_layer, is_nap, norm_name

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


def _activation_class(name: str) -> type:
    if isinstance(name, str) and name.lower() == "crelu":
        from normrl.plasticity.crelu import CReLU

        return CReLU
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted([*ACTIVATIONS, 'crelu']))}")
    return ACTIVATIONS[name.lower()]


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (ValueError listing the valid names).
    ``"crelu"`` is the concatenated ReLU of :mod:`normrl.plasticity.crelu` (Abbas et al.
    2023, arXiv 2303.07507), which doubles the features (:func:`width_multiplier`)."""
    return _activation_class(name)()


def width_multiplier(name: str) -> int:
    """Features out per feature in of activation ``name``: 2 for ``"crelu"``, else 1.
    The networks size the layer after a CReLU for twice the features (the "equal width"
    rule; :func:`normrl.plasticity.crelu_hidden_widths` gives equal-parameter widths)."""
    return int(getattr(_activation_class(name), "width_multiplier", 1))


def resolve_norm(norm: NormSpec) -> tuple[Callable[..., nn.Module] | None, bool]:
    """``(constructor, nap)`` for a ``norm=`` argument.

    The constructor is ``None`` when the norm is the identity (``None`` or ``"none"``):
    the networks then insert no module at all, so ``Linear -> activation`` chains stay
    visible to :func:`~normrl.normalization.apply_nap`. ``nap`` is
    :func:`~normrl.normalization.is_nap`: the layers feeding such norms are built
    without bias.
    """
    if norm_name(norm) == "none":
        return None, False
    return get_norm_layer(norm), is_nap(norm)


def check_positive(name: str, value) -> int:
    """``value`` as an int if it is a positive integer, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
