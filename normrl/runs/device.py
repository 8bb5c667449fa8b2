"""Device resolution with the one clear CUDA error of every entry point."""
from __future__ import annotations

import torch

from normrl.utils.errors import UserError


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``torch.device`` for a user's device string: ``"auto"`` (or None) is CUDA when
    available, else the CPU. A malformed string, or CUDA requested where there is none,
    raises :class:`~normrl.utils.errors.UserError` (one line)."""
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise UserError(f"bad --device {spec!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available (use --device cpu or auto)")
    return device


def set_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)``; 0 keeps torch's default (UserError below 0)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise UserError(f"--threads must be an integer >= 0, got {threads!r}")
    if threads:
        torch.set_num_threads(threads)
