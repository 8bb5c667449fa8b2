"""scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): real data without a download.

One loader serves every digits data set of normrl: the class-split stream
(:func:`normrl.data.split_digits`), the permuted-digits tasks
(:func:`normrl.data.permuted_digits_tasks`) and the plasticity-suite problems.
"""
from __future__ import annotations

import torch

NUM_CLASSES = 10
#: the largest pixel value of the digits images (4-bit intensities)
MAX_PIXEL = 16.0


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixels, labels)``: float64 ``(1797, 8, 8)`` intensities in 0..16 and int64
    ``(1797,)`` labels, as scikit-learn ships them."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("the digits data sets need scikit-learn: pip install scikit-learn") from exc
    digits = load_digits()
    return torch.from_numpy(digits.images), torch.from_numpy(digits.target).long()
