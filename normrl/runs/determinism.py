"""``--deterministic``: ask torch for repeatable CUDA runs (docs/reproducibility.md).

CPU runs are repeatable without it (same torch version, thread count and options); on
CUDA, cuBLAS reduction order and atomics-based kernels (``index_add_``, the backward of
``gather``) vary between runs unless deterministic algorithms are requested.
"""
from __future__ import annotations

import os

#: cuBLAS workspace setting that torch releases up to late 2025 require for deterministic
#: cuBLAS (newer ones ignore the requirement); only read before CUDA initializes.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def enable_deterministic() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` (unless already set), turn on
    ``torch.use_deterministic_algorithms(True)`` (an operation without a deterministic
    implementation then raises a RuntimeError naming itself) and turn off cuDNN's
    run-time algorithm search. Call before anything touches CUDA; slower on CUDA, no
    effect on CPU results."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    import torch

    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
