"""Intervention spec strings, as config fields and the CLI hold them.

``"redo:tau=0.1,every=1000"`` is the intervention ``redo`` with options ``tau=0.1`` and
``every=1000``; ``"l2_init"`` takes the defaults. Values are parsed in this order:
``true``/``false`` (any case) → bool, ``none``/``null`` → None, an int literal → int,
a float literal (``1e-4``, ``0.5``, ``inf``) → float, anything else → str. Names and
keywords are checked against the registry and the constructor's signature, so a typo
is a ``ValueError`` naming the valid choices.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable, Union

from normrl.plasticity.base import Intervention
from normrl.plasticity.compose import Compose
from normrl.plasticity.registry import create_intervention, get_intervention_class, intervention_keywords

__all__ = ["parse_intervention_spec", "build_interventions", "derive_seed", "format_intervention_spec"]

Spec = Union[str, Intervention]


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_intervention_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:k=v,k2=v2"`` → ``(name, {k: v, k2: v2})`` (see the module docstring).

    Raises ValueError for an empty or malformed spec, an unknown name (listing the
    registered ones), an unknown keyword (listing the constructor's) or a keyword given
    twice.
    """
    if not isinstance(spec, str):
        raise TypeError(f"an intervention spec is a string, got {type(spec).__name__}")
    name, sep, rest = spec.strip().partition(":")
    name = name.strip().lower()
    if not name:
        raise ValueError(f"intervention spec {spec!r} has no name; expected 'name' or 'name:key=value,...'")
    get_intervention_class(name)  # unknown names raise, listing the valid ones
    kwargs: dict[str, Any] = {}
    if sep and rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"intervention spec {spec!r}: option {item.strip()!r} is not key=value")
            if key in kwargs:
                raise ValueError(f"intervention spec {spec!r}: option {key!r} given twice")
            kwargs[key] = _parse_value(value.strip())
    valid = intervention_keywords(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"intervention {name!r} has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(valid) or '(none)'}"
        )
    return name, kwargs


def format_intervention_spec(name: str, kwargs: dict[str, Any]) -> str:
    """The inverse of :func:`parse_intervention_spec` (for config.json and logs)."""
    if not kwargs:
        return name
    return f"{name}:" + ",".join(f"{k}={v}" for k, v in kwargs.items())


def derive_seed(seed: int, index: int, name: str) -> int:
    """A 63-bit seed for the ``index``-th intervention ``name`` of a run seeded ``seed``:
    distinct across positions and runs (a hash, so seeds ``s`` and ``s + 1`` never share
    an intervention stream)."""
    digest = hashlib.sha256(f"{int(seed)}/{int(index)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def build_interventions(specs: Iterable[Spec] = (), seed: int = 0) -> Compose:
    """A :class:`Compose` of the interventions described by ``specs`` (spec strings or
    already built :class:`Intervention` objects).

    Every intervention whose constructor takes ``seed`` and was not given one gets
    ``derive_seed(seed, position, name)``, so one run seed makes every stochastic
    intervention reproducible.
    """
    if isinstance(specs, (str, Intervention)):
        specs = [specs]
    built: list[Intervention] = []
    for index, spec in enumerate(specs):
        if isinstance(spec, Intervention):
            built.append(spec)
            continue
        name, kwargs = parse_intervention_spec(spec)
        if "seed" in intervention_keywords(name) and "seed" not in kwargs:
            kwargs["seed"] = derive_seed(seed, index, name)
        built.append(create_intervention(name, **kwargs))
    return Compose(built)
