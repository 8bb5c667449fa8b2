"""Shared pieces of the batch-dependent family: reduction axes per layout, a
Python-side step counter mirrored in a buffer, default group counts."""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers.groupnorm import default_num_groups


def default_groups(num_features: int, layout: str) -> int:
    """Default group count of the group-based norms here (CN, BCN, EvoNorm-S0):
    ``"nchw"``: the largest divisor of ``num_features`` that is <= 32 (groups then also
    span the spatial positions); ``"nc"``: 1, all features of a position in one group,
    because groups of one or two features at a single position are degenerate
    (a one-feature group normalizes to exactly 0)."""
    return default_num_groups(num_features) if layout == "nchw" else 1


def default_multi_channel_groups(num_features: int, layout: str) -> int:
    """Like :func:`default_groups`, but for ``"nchw"`` every group has at least two
    channels (the largest divisor <= min(32, num_features // 2), or 1): Batch-Channel
    Norm's GroupNorm after BatchNorm would cancel BN's per-channel affine map
    completely with one-channel groups."""
    if layout != "nchw":
        return 1
    return default_num_groups(num_features, max(1, min(32, num_features // 2)))


def reduce_dims(x: torch.Tensor, layout: str) -> tuple[int, ...]:
    """Every axis of ``x`` except the channel axis (1 for nchw, last for nc)."""
    channel = 1 if layout == "nchw" else x.dim() - 1
    return tuple(d for d in range(x.dim()) if d != channel)


class StepCounted(nn.Module):
    """A module with a ``num_batches_tracked`` buffer mirrored by the Python int
    ``steps`` (branching on it needs no device-to-host copy), kept in sync on load."""

    def _init_counter(self) -> None:
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.steps = 0

    def _count_step(self) -> int:
        self.steps += 1
        self.num_batches_tracked.fill_(self.steps)
        return self.steps

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.steps = int(self.num_batches_tracked)
