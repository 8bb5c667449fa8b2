"""Heavy-tail exponent α of a layer's weight spectrum, HT-SR style, with FARMS.

Heavy-Tailed Self-Regularization (Martin & Mahoney, arXiv 1810.01075) fits a power law
``p(λ) ∝ λ^(−α)`` to the tail of the empirical spectral density (ESD) of ``WᵀW``: a
smaller α means a heavier tail, read as a more strongly trained layer (α ≈ 2–4 for
well-trained layers; a random matrix has a light, Marchenko–Pastur tail).

FARMS (Hu et al., ICML 2025, "Eigenspectrum Analysis of Neural Networks without Aspect
Ratio Bias", arXiv 2506.06280): the ESD of a matrix depends on its aspect ratio, so
layers of different shapes are not comparable. FARMS measures the ESD of
fixed-aspect-ratio submatrices instead. Exact procedure implemented (following the
authors' code, ``sampled_eigs``/``fixed_sampling``):

1. orient the matrix so that it has no more rows than columns (``WᵀW`` and ``WWᵀ`` have
   the same nonzero eigenvalues); a conv weight ``(out, in, kh, kw)`` gives one
   ``(out, in)`` matrix per kernel position (WeightWatcher's convention) and all of them
   are sampled;
2. submatrix shape ``m × Q·m`` with ``Q = aspect_ratio`` [2.0] and
   ``m = min(rows_per_window [100], rows, ⌊cols/Q⌋)``;
3. windows on a grid: ``windows_per_dim`` [10] evenly spaced start positions along each
   dimension (fewer when the matrix is small; duplicates removed), every row-position ×
   column-position pair taken;
4. the eigenvalues (squared singular values) of all windows are **pooled** into one ESD;
5. power-law fit of the pooled ESD (:func:`power_law_alpha`): the Hill / Clauset maximum
   likelihood estimate ``α = 1 + n / Σ_{λ_i ≥ λ_min} ln(λ_i / λ_min)`` over the ``n``
   eigenvalues above ``λ_min``, with ``λ_min`` the ESD's median (``xmin="median"``,
   the FARMS code's default ``xmin_mid``) or the one minimizing the Kolmogorov–Smirnov
   distance (``xmin="ks"``, Clauset et al. 2009 and WeightWatcher's default).

Differences from the authors' code: for convolutions their code averages the α of
several groups of kernel-position matrices; here all eigenvalues are pooled (one fit
per layer, like linear layers). The window size adapts to small matrices (their code
slices past the end and so loses the fixed ratio on matrices under 100×200).
``farms=False`` fits the full matrix's ESD (plain HT-SR).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn.modules.conv import _ConvNd

__all__ = ["power_law_alpha", "farms_eigenvalues", "heavy_tail_alpha", "layer_heavy_tail_alphas", "XMIN_RULES"]

#: Valid ``xmin`` rules of :func:`power_law_alpha`.
XMIN_RULES = ("median", "ks")


def power_law_alpha(eigenvalues: torch.Tensor, xmin: str = "median") -> tuple[float, float, float]:
    """Fit ``p(λ) ∝ λ^(−α)`` to the tail of ``eigenvalues``; return ``(α, λ_min, D)``.

    ``α = 1 + n / Σ ln(λ_i/λ_min)`` over the ``n`` values ``λ_i ≥ λ_min`` (Hill / Clauset
    MLE); ``D`` is the Kolmogorov–Smirnov distance between the empirical tail and the
    fitted power law. ``xmin="median"``: ``λ_min`` = the value at index ``N // 2`` of the
    sorted ESD; ``xmin="ks"``: the candidate minimizing ``D`` (every value but the top 5).
    Non-positive values are dropped first.
    """
    if xmin not in XMIN_RULES:
        raise ValueError(f"xmin must be one of {XMIN_RULES}, got {xmin!r}")
    eigs = torch.sort(eigenvalues.detach().double().flatten()).values
    eigs = eigs[eigs > 0]
    if eigs.numel() < 5:
        raise ValueError(f"need at least 5 positive eigenvalues to fit a power law, got {eigs.numel()}")
    logs = eigs.log()
    total = eigs.numel()

    def fit(i: int) -> tuple[float, float]:
        tail = logs[i:]
        n = tail.numel()
        denom = float(tail.sum() - n * logs[i])
        if denom <= 0:
            return math.inf, math.inf
        alpha = 1.0 + n / denom
        ranks = torch.arange(n, dtype=torch.float64) / n
        model_cdf = 1.0 - torch.exp((1.0 - alpha) * (tail - logs[i]))
        return alpha, float((model_cdf - ranks).abs().max())

    if xmin == "median":
        i = total // 2
        alpha, d = fit(i)
        return alpha, float(eigs[i]), d
    # Every candidate at once (chunked): α_i from suffix sums, D_i = max_j |F_fit − F_emp|.
    candidates = total - 5
    suffix = torch.flip(torch.cumsum(torch.flip(logs, [0]), 0), [0])
    idx = torch.arange(candidates)
    n = (total - idx).double()
    denom = suffix[:candidates] - n * logs[:candidates]
    alphas = torch.where(denom > 0, 1.0 + n / denom.clamp_min(1e-300), torch.full_like(denom, math.inf))
    distances = torch.full((candidates,), math.inf, dtype=torch.float64)
    cols = torch.arange(total)
    for start in range(0, candidates, 256):
        rows = idx[start : start + 256]
        offset = cols[None, :] - rows[:, None]  # j − i
        valid = offset >= 0
        a = alphas[rows][:, None]
        fitted = 1.0 - torch.exp((1.0 - a) * (logs[None, :] - logs[rows][:, None]).clamp_min(0))
        empirical = offset.double() / n[rows][:, None]
        gap = torch.where(valid, (fitted - empirical).abs(), torch.zeros((), dtype=torch.float64))
        distances[rows] = torch.where(torch.isfinite(alphas[rows]), gap.max(dim=1).values, torch.full_like(a[:, 0], math.inf))
    i = int(torch.argmin(distances))
    return float(alphas[i]), float(eigs[i]), float(distances[i])


def _matrices(weight: torch.Tensor) -> list[torch.Tensor]:
    w = weight.detach().float()
    if w.dim() == 2:
        mats = [w]
    elif w.dim() > 2:
        flat = w.flatten(2)  # (out, in, positions)
        mats = [flat[:, :, j] for j in range(flat.shape[2])]
    else:
        raise ValueError(f"a weight matrix needs at least 2 dimensions, got shape {tuple(weight.shape)}")
    return [m if m.shape[0] <= m.shape[1] else m.T for m in mats]


def _starts(length: int, window: int, count: int) -> list[int]:
    if length <= window or count <= 1:
        return [0]
    return sorted({round(i * (length - window) / (count - 1)) for i in range(count)})


def farms_eigenvalues(weight: torch.Tensor, aspect_ratio: float = 2.0, rows_per_window: int = 100, windows_per_dim: int = 10) -> torch.Tensor:
    """The pooled eigenvalues of FARMS submatrices of ``weight`` (module docstring, steps
    1–4)."""
    if not aspect_ratio >= 1.0:
        raise ValueError(f"aspect_ratio must be >= 1 (columns per row), got {aspect_ratio!r}")
    eigs = []
    for mat in _matrices(weight):
        rows, cols = mat.shape
        m = min(rows_per_window, rows, int(cols // aspect_ratio))
        if m < 1:
            raise ValueError(f"matrix {rows}x{cols} is too small for aspect ratio {aspect_ratio}")
        n = int(round(m * aspect_ratio))
        for r in _starts(rows, m, windows_per_dim):
            for c in _starts(cols, n, windows_per_dim):
                eigs.append(torch.linalg.svdvals(mat[r : r + m, c : c + n]).square())
    return torch.cat(eigs)


def heavy_tail_alpha(
    weight: torch.Tensor,
    *,
    farms: bool = True,
    xmin: str = "median",
    aspect_ratio: float = 2.0,
    rows_per_window: int = 100,
    windows_per_dim: int = 10,
) -> float:
    """HT-SR exponent α of one weight tensor: FARMS (default) or the full matrix's ESD
    (``farms=False``); ``xmin`` as in :func:`power_law_alpha`."""
    if farms:
        eigs = farms_eigenvalues(weight, aspect_ratio, rows_per_window, windows_per_dim)
    else:
        eigs = torch.cat([torch.linalg.svdvals(m).square() for m in _matrices(weight)])
    return power_law_alpha(eigs, xmin)[0]


def layer_heavy_tail_alphas(model: nn.Module, **kwargs) -> dict[str, float]:
    """α of every Linear/Conv weight of ``model`` by module name (keywords as in
    :func:`heavy_tail_alpha`). Layers too small to fit (fewer than 5 eigenvalues) are
    skipped."""
    if kwargs.get("xmin", "median") not in XMIN_RULES:
        raise ValueError(f"xmin must be one of {XMIN_RULES}, got {kwargs['xmin']!r}")
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, _ConvNd)):
            try:
                out[name] = heavy_tail_alpha(module.weight, **kwargs)
            except ValueError:
                continue
    return out
