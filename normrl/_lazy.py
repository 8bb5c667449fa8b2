"""Lazy attribute loading for package ``__init__`` files (PEP 562).

Packages declare ``{public_name: submodule}`` and import the submodule on first
access, so ``import normrl.normalization`` stays cheap and optional parts (ale-py,
stable-baselines3) load only when used.
"""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """Return ``(__getattr__, __dir__)`` for a package exporting ``exports``."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{exports[name]}")
        return getattr(module, name)

    def __dir__():
        return sorted(exports)

    return __getattr__, __dir__
