"""Name-based registry of plasticity interventions (the norm registry's twin).

Every intervention class is registered under a lowercase name with the paper it
implements and a one-line description::

    @register_intervention("l2_init", paper="Kumar et al. 2023, arXiv 2308.11958",
                           description="...")
    class L2Init(Intervention): ...

Every module of the :mod:`normrl.plasticity` package is imported on first use of the
registry, so adding a method is adding one file with a registered class.
``create_intervention(name, **kw)`` checks the keywords against the constructor's
signature, so a misspelt option is a ``ValueError`` naming the valid ones instead of
a silently ignored default.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass

from normrl.plasticity.base import Intervention

__all__ = [
    "InterventionEntry",
    "register_intervention",
    "list_interventions",
    "intervention_entries",
    "get_intervention_class",
    "intervention_keywords",
    "create_intervention",
]


@dataclass(frozen=True)
class InterventionEntry:
    """One registered intervention: its name, class, paper and one-line description."""

    name: str
    cls: type
    paper: str
    description: str


_REGISTRY: dict[str, InterventionEntry] = {}
_LOADED = False


def register_intervention(name: str, *, paper: str, description: str):
    """Class decorator registering an :class:`Intervention` subclass under ``name``.

    ``name`` is lowercase (letters, digits, ``_``); ``paper`` names the source (authors,
    year, arXiv id); ``description`` is one line. Registering a name twice with another
    class is an error. Sets ``cls.name = name``.
    """
    if not name or name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"intervention names are lowercase letters, digits and '_', got {name!r}")

    def decorator(cls):
        if not (isinstance(cls, type) and issubclass(cls, Intervention)):
            raise TypeError(f"@register_intervention({name!r}) expects an Intervention subclass, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name].cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"intervention {name!r} is already registered by {_REGISTRY[name].cls.__qualname__}")
        _REGISTRY[name] = InterventionEntry(name, cls, paper, description)
        cls.name = name
        return cls

    return decorator


def _load_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import normrl.plasticity as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def list_interventions() -> list[str]:
    """Sorted names of every registered intervention."""
    _load_builtin()
    return sorted(_REGISTRY)


def intervention_entries() -> list[InterventionEntry]:
    """Every registered intervention with its paper and description, sorted by name."""
    _load_builtin()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def get_intervention_class(name: str) -> type:
    """The class registered as ``name`` (case-insensitive); ``ValueError`` listing the
    valid names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"intervention name must be a str, got {type(name).__name__}")
    _load_builtin()
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown intervention {name!r}; valid names: {', '.join(list_interventions())}")
    return _REGISTRY[key].cls


def intervention_keywords(name: str) -> dict[str, object]:
    """``{keyword: default}`` of the constructor of ``name`` (``inspect.Parameter.empty``
    for required ones)."""
    cls = get_intervention_class(name)
    params = inspect.signature(cls.__init__).parameters
    return {
        k: p.default
        for k, p in params.items()
        if k != "self" and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def create_intervention(name: str, **kwargs) -> Intervention:
    """Build the intervention ``name`` with keyword options ``kwargs``.

    Raises ``ValueError`` for an unknown name (listing the valid names) or a keyword the
    constructor does not take (listing the valid keywords).
    """
    cls = get_intervention_class(name)
    valid = intervention_keywords(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"intervention {cls.name!r} has no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    return cls(**kwargs)
