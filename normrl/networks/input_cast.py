"""The one input-casting module of the networks: any observation dtype in, float32 out."""
from __future__ import annotations

import torch
import torch.nn as nn


class InputCast(nn.Module):
    """Cast a batch to float32; ``uint8`` input is also divided by ``uint8_scale`` (255
    for Atari frames, so pixels land in [0, 1]). Float32 input passes through unchanged;
    bool, other integer and float64 input is converted (MinAtar's 0/1 grids keep their
    values).

    Every network that may see non-float observations starts with it: NatureCNN
    (``uint8_scale=255``), MinAtarCNN (no scaling), and the MLPs that
    :func:`normrl.networks.build_network` builds for vector observations.
    """

    def __init__(self, uint8_scale: float = 1.0):
        super().__init__()
        if not uint8_scale > 0:
            raise ValueError(f"uint8_scale must be > 0, got {uint8_scale!r}")
        self.uint8_scale = float(uint8_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return x
        y = x.float()
        if x.dtype == torch.uint8 and self.uint8_scale != 1.0:
            y.div_(self.uint8_scale)
        return y

    def extra_repr(self) -> str:
        return f"uint8_scale={self.uint8_scale:g}"
