"""The LayerNorm of Normalize-and-Project (Lyle et al. 2024, arXiv 2407.01800).

Exact variant: :class:`~normrl.normalization.layers.layernorm.LayerNorm` (mean and
biased variance over the features, or over the channels at each position for
``layout="nchw"``; ``eps=1e-5``; affine gain 1 / offset 0), marked with the class
attribute ``nap = True``. Networks built with ``norm="nap"`` therefore drop the bias
of every layer feeding one of these norms (the norm's offset replaces it and the
layer becomes scale-invariant), and the agents wrap their optimizer in the NaP
weight projection (:class:`~normrl.normalization.NaPProjector`). The layer itself
computes exactly what ``layernorm`` computes.
"""
from __future__ import annotations

from normrl.normalization.layers.layernorm import LayerNorm
from normrl.normalization.registry import register_norm


@register_norm("nap", description="LayerNorm of Normalize-and-Project: bias-free feeding layers + weight projection", paper="arXiv 2407.01800")
class NaPLayerNorm(LayerNorm):
    """LayerNorm flagged ``nap = True`` (see the module docstring). Same arguments
    and defaults as :class:`~normrl.normalization.layers.layernorm.LayerNorm`."""

    nap = True
