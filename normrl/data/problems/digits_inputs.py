"""The fixed inputs of the digits plasticity problems: scikit-learn's 8x8 digits as
64-dimensional vectors (no download), standardized by default."""
from __future__ import annotations

import torch

from normrl.data.digits import MAX_PIXEL, load_digits_tensors
from normrl.data.problems.base import check_count, derive_seed

__all__ = ["standardized_digits", "NUM_DIGITS", "SCALINGS"]

#: images in scikit-learn's digits data set
NUM_DIGITS = 1797
#: input scalings: per-pixel z-score over the chosen images, or intensities / 16 in [0, 1]
SCALINGS = ("standardize", "unit")


def standardized_digits(num_inputs: int = NUM_DIGITS, seed: int = 0, scaling: str = "standardize") -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, labels)``: ``num_inputs`` digits images as float32 ``(num_inputs, 64)``
    vectors with their int64 labels.

    ``scaling="standardize"`` [default]: each pixel has mean 0 and (sample) standard
    deviation 1 over the chosen images; pixels that are constant over them become 0.
    ``scaling="unit"``: intensities divided by 16, in ``[0, 1]`` (what
    :func:`normrl.data.permuted_digits_tasks` uses).

    ``num_inputs=1797`` takes every image in scikit-learn's order; fewer takes a subset
    drawn without replacement from a generator seeded by ``seed``.
    """
    check_count("num_inputs", num_inputs)
    if num_inputs > NUM_DIGITS:
        raise ValueError(f"num_inputs must be <= {NUM_DIGITS} (the digits data set's size), got {num_inputs}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    pixels, labels = load_digits_tensors()
    x = pixels.reshape(pixels.shape[0], -1).to(torch.float64)
    if num_inputs < NUM_DIGITS:
        pick = torch.randperm(NUM_DIGITS, generator=torch.Generator().manual_seed(derive_seed(seed, "inputs")))[:num_inputs]
        x, labels = x[pick], labels[pick]
    if scaling == "unit":
        return (x / MAX_PIXEL).to(torch.float32), labels
    std = x.std(dim=0)
    x = torch.where(std > 0, (x - x.mean(dim=0)) / std.clamp_min(1e-12), torch.zeros_like(x))
    return x.to(torch.float32), labels
