"""Layout helpers shared by the norm layers: validating ``layout`` and applying a
last-axis normalization to channels-first (NCHW) tensors."""
from __future__ import annotations

from typing import Callable

import torch


def check_layout(cls: type, layout: str) -> str:
    """Return ``layout`` if ``cls.layouts`` supports it, else raise ValueError naming
    the supported layouts."""
    if layout not in cls.layouts:
        raise ValueError(f"{cls.__name__} supports layout in {cls.layouts}, got {layout!r}")
    return layout


def over_channels(x: torch.Tensor, layout: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``fn`` (a normalization over the last axis) to the channel axis of ``x``.

    ``layout="nc"``: ``fn(x)``. ``layout="nchw"``: channels are moved last, ``fn`` is
    applied at every spatial position, and channels are moved back (the flax / NaP
    convention of LayerNorm over the channel axis of a conv feature map).
    """
    if layout == "nc":
        return fn(x)
    if x.dim() < 2:
        raise ValueError(f"layout='nchw' needs input of shape (N, C, ...), got {tuple(x.shape)}")
    return fn(x.movedim(1, -1)).movedim(-1, 1)


def channel_shape(x: torch.Tensor, layout: str) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector against ``x`` in ``layout``."""
    if layout == "nc":
        return (-1,)
    return (-1,) + (1,) * (x.dim() - 2)
