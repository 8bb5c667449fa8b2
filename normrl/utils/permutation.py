"""Seeded permutations, shared by the permuted env wrappers and the permuted data tasks."""
from __future__ import annotations

import torch


def make_permutation(size: int, seed: int | None) -> torch.Tensor:
    """A permutation of ``range(size)`` (int64, CPU) drawn by ``torch.randperm`` from a
    CPU generator seeded with ``seed``; the identity if ``seed`` is ``None``."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if seed is None:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(int(seed)))
