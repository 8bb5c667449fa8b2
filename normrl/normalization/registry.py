"""Name-based registry of normalization layers, in the style of timm's norm factory.

Every layer is registered under a lowercase name with a one-line description and the
paper it implements. The feature count is the only positional argument of every
layer; everything else is a keyword with a default. ``layout="nc"`` (the default)
means features on the last axis, (N, C) or (N, ..., C); ``layout="nchw"`` means
channels-first images, as produced by convolutions.

Layers live in :mod:`normrl.normalization.layers`; every module there is imported on
first use of the registry, so adding a norm is adding one file with a
``@register_norm(...)`` class.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, Union

import torch.nn as nn

LAYOUTS = ("nc", "nchw")


@dataclass(frozen=True)
class NormEntry:
    """One registered norm: its name, constructor, one-line description and paper."""

    name: str
    cls: Callable[..., nn.Module]
    description: str
    paper: str


_REGISTRY: dict[str, NormEntry] = {}
_LOADED = False

NormSpec = Union[str, type, Callable[..., nn.Module], None]


def register_norm(name: str, *, description: str, paper: str = ""):
    """Class decorator registering a norm layer under ``name`` (lowercase).

    The class must accept ``num_features`` positionally and ``layout`` as a keyword.
    Registering the same name twice is an error, so two layers never shadow each other.
    """
    if name != name.lower() or not name:
        raise ValueError(f"norm names are lowercase and non-empty, got {name!r}")

    def decorator(cls):
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"norm {name!r} is already registered by {_REGISTRY[name].cls.__qualname__}")
        _REGISTRY[name] = NormEntry(name, cls, description, paper)
        cls.norm_name = name
        return cls

    return decorator


def _load_builtin_layers() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from normrl.normalization import layers

    for info in sorted(pkgutil.iter_modules(layers.__path__), key=lambda m: m.name):
        importlib.import_module(f"{layers.__name__}.{info.name}")


def list_norms() -> list[str]:
    """Sorted names of every registered norm."""
    _load_builtin_layers()
    return sorted(_REGISTRY)


def norm_entries() -> list[NormEntry]:
    """Every registered norm with its description and paper, sorted by name."""
    _load_builtin_layers()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def get_norm_layer(norm: NormSpec) -> Callable[..., nn.Module]:
    """Resolve ``norm`` to a constructor ``f(num_features, **kw) -> nn.Module``.

    Accepts a registered name (case-insensitive), a class, a ``functools.partial`` or
    other callable (returned unchanged), or ``None`` (the identity layer ``"none"``).
    Unknown names raise ``ValueError`` listing the valid ones.
    """
    if norm is None:
        norm = "none"
    if isinstance(norm, str):
        _load_builtin_layers()
        key = norm.lower()
        if key not in _REGISTRY:
            raise ValueError(f"unknown norm {norm!r}; valid names: {', '.join(list_norms())}")
        return _REGISTRY[key].cls
    if isinstance(norm, (type, functools.partial)) or callable(norm):
        return norm
    raise TypeError(f"norm must be a name, a class, a partial or None, got {type(norm).__name__}")


def create_norm_layer(name: NormSpec, num_features: int, **kwargs) -> nn.Module:
    """Build the norm ``name`` for ``num_features`` features (the only positional argument)."""
    if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features <= 0:
        raise ValueError(f"num_features must be a positive int, got {num_features!r}")
    layout = kwargs.get("layout", "nc")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return get_norm_layer(name)(num_features, **kwargs)


def norm_name(norm: NormSpec) -> str:
    """Registered name of a norm spec (``"custom"`` for unregistered callables)."""
    if norm is None:
        return "none"
    if isinstance(norm, str):
        get_norm_layer(norm)
        return norm.lower()
    target = norm.func if isinstance(norm, functools.partial) else norm
    return getattr(target, "norm_name", "custom")


def is_nap(norm: NormSpec) -> bool:
    """True for norm specs that build the Normalize-and-Project form (``norm="nap"``, or
    any class or partial whose class sets ``nap = True``): networks then drop the bias of
    the layers feeding the norm, and the agents and learners wrap their optimizer in the
    NaP weight projection (arXiv 2407.01800). ``None``/``"none"`` is False; unknown names
    raise ValueError listing the registered ones."""
    if norm_name(norm) == "none":
        return False
    ctor = get_norm_layer(norm)
    target = ctor.func if isinstance(ctor, functools.partial) else ctor
    return bool(getattr(target, "nap", False))
