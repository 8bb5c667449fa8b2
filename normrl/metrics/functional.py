"""Plasticity metrics as pure functions of a batch of activations or features.

Every function returns a 0-dim tensor on the input's device and never synchronizes with
the host (no ``.item()``, no Python branching on tensor values), so many of them can be
computed in a row and transferred together.

Input shapes:

* unit-wise metrics (:func:`dormant_ratio`, :func:`active_fraction`,
  :func:`unit_scores`) take activations ``(N, units)``, or channels-first conv
  activations ``(N, C, *spatial)`` (``(N, C, H, W)`` for Conv2d) whose units are the
  ``C`` channels, averaged over the batch *and* the spatial positions;
* matrix metrics (:func:`srank`, :func:`effective_rank`, :func:`stable_rank`,
  :func:`feature_norm`) take a feature matrix ``Φ`` of shape ``(N, d)``; an input with
  more than two dims is flattened per sample to ``(N, prod(rest))`` (a conv map is the
  sample's feature vector ``C·H·W``).

Computations run in float32 (half/bfloat16 inputs are upcast).
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "unit_scores",
    "dormant_ratio",
    "active_fraction",
    "singular_values",
    "batched_singular_values",
    "srank",
    "srank_from_singular_values",
    "effective_rank",
    "effective_rank_from_singular_values",
    "stable_rank",
    "stable_rank_from_singular_values",
    "feature_norm",
]

_TINY = 1e-30


def _check_acts(acts: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(acts, torch.Tensor):
        raise TypeError(f"{what} expects a torch.Tensor, got {type(acts).__name__}")
    if acts.dim() < 2:
        raise ValueError(f"{what} expects a batch of shape (N, units) or (N, C, *spatial), got shape {tuple(acts.shape)}")
    if acts.shape[0] == 0 or acts[0].numel() == 0:
        raise ValueError(f"{what} got an empty batch of shape {tuple(acts.shape)}")
    return acts.detach().float()


def _mean_abs_per_unit(acts: torch.Tensor) -> torch.Tensor:
    """``E|h_i|`` per unit: mean over dim 0 for (N, units), over every dim but 1 for
    channels-first conv activations."""
    a = acts.abs()
    if a.dim() == 2:
        return a.mean(dim=0)
    dims = [0, *range(2, a.dim())]
    return a.mean(dim=dims)


def unit_scores(acts: torch.Tensor) -> torch.Tensor:
    """ReDo unit scores (Sokar et al. 2023, arXiv 2302.12902, Eq. 1):
    ``s_i = E_x|h_i(x)| / ((1/H) Σ_k E_x|h_k(x)|)``, shape ``(units,)``.

    The expectation is the mean over the batch (and the spatial positions for conv
    activations ``(N, C, *spatial)``, where the units are channels). The scores average
    to 1 over the layer; when every activation of the layer is zero the layer mean is 0
    and all scores are defined as 0 (every unit counts as dormant/dead).
    """
    m = _mean_abs_per_unit(_check_acts(acts, "unit_scores"))
    return m / m.mean().clamp_min(_TINY)


def dormant_ratio(acts: torch.Tensor, tau: float = 0.025) -> torch.Tensor:
    """Fraction of τ-dormant units (ReDo, Sokar et al. 2023, arXiv 2302.12902).

    A unit is dormant when its :func:`unit_scores` score is ``<= tau`` (the paper's
    definition uses ``≤``). With ``tau=0`` this counts *dead* units exactly: units whose
    activation is zero on every input of the batch (every position, for conv). With a
    strict ``<``, ``tau=0`` would count nothing, which is why ``≤`` is used.

    Args:
        acts: activations ``(N, units)`` or ``(N, C, *spatial)`` (units = channels).
        tau: dormancy threshold on the normalized score [0.025, the paper's value for
            the reported plots; 0 gives dead units].

    Returns a 0-dim float32 tensor in ``[0, 1]``.
    """
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or tau < 0:
        raise ValueError(f"tau must be a float >= 0, got {tau!r}")
    s = unit_scores(acts)
    return (s <= tau).float().mean()


def active_fraction(acts: torch.Tensor) -> torch.Tensor:
    """Fraction of units that are nonzero on at least one input of the batch.

    A unit ``i`` is active when ``h_i(x) != 0`` for some ``x`` of the batch (for conv
    activations: for some sample and some spatial position of channel ``i``). This is
    ``1 - dormant_ratio(acts, tau=0)``, i.e. one minus the fraction of dead units; for
    ReLU networks it is the fraction of units that are not dead on the probe batch.

    Returns a 0-dim float32 tensor in ``[0, 1]``.
    """
    m = _mean_abs_per_unit(_check_acts(acts, "active_fraction"))
    return (m > 0).float().mean()


def _features(features: torch.Tensor, what: str) -> torch.Tensor:
    f = _check_acts(features, what)
    return f.reshape(f.shape[0], -1)


def singular_values(features: torch.Tensor) -> torch.Tensor:
    """Singular values (descending) of the feature matrix ``(N, d)`` (inputs with more
    dims are flattened per sample), float32, no centering."""
    return torch.linalg.svdvals(_features(features, "singular_values"))


def batched_singular_values(features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Singular values of several feature matrices from batched eigensolver calls on
    their Gram matrices: ``σ(Φ) = sqrt(eig(G))`` with ``G = Φ Φᵀ`` (``N ≤ d``) or
    ``ΦᵀΦ`` (``N > d``), of size ``k = min(N, d)``.

    Matrices whose Gram matrices have the same size share one call (the layers of an MLP
    of equal widths, or every layer wider than the probe batch: one call in the usual
    MLP/CNN cases). Gram matrices and eigenvalues are computed in float64 (float32 on
    devices without float64), so the singular values stay accurate to ~1e-8 of the
    largest one despite the squaring. Returns, per matrix (flattened per sample), its
    ``min(N, d)`` singular values in descending order, float32; all NaN for a matrix
    holding a NaN or infinite value (so a diverged network's metrics read NaN instead
    of raising).

    Why: torch's SVD/eigensolvers check convergence with a device→host synchronization
    on CUDA; batching makes that one synchronization per Gram size instead of one per
    layer.
    """
    mats = [_features(f, "batched_singular_values") for f in features]
    if not mats:
        raise ValueError("batched_singular_values needs at least one matrix")
    dtype = torch.float32 if mats[0].device.type == "mps" else torch.float64
    grams = []
    for m in mats:
        m = m.to(dtype)
        grams.append(m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m)
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(grams):
        groups.setdefault(g.shape[0], []).append(i)
    out: list[torch.Tensor] = [None] * len(mats)  # type: ignore[list-item]
    for idx in groups.values():
        batch = torch.stack([grams[i] for i in idx])
        # a non-finite Gram matrix would make the solver fail (LinAlgError): solve a zero
        # matrix in its place and report NaN singular values for it, without a host sync
        finite = torch.isfinite(batch).flatten(1).all(1)
        eig = torch.linalg.eigvalsh(torch.where(finite[:, None, None], batch, 0.0))  # ascending
        sv = torch.where(finite[:, None], eig.clamp_min(0).sqrt().flip(-1), float("nan")).float()
        for j, i in enumerate(idx):
            out[i] = sv[j]
    return out


def srank_from_singular_values(sv: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """:func:`srank` from precomputed singular values ``sv`` (any order)."""
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not 0 <= delta < 1:
        raise ValueError(f"delta must be a float in [0, 1), got {delta!r}")
    s = torch.sort(sv.float(), descending=True).values
    cum = torch.cumsum(s, dim=0)
    total = cum[-1]
    # k = 1 + #{j : cumsum_j < (1-δ)·total}, the smallest k reaching the threshold.
    k = (cum < (1.0 - delta) * total).sum() + 1
    k = torch.clamp(k, max=s.numel())
    return torch.where(total > 0, k, torch.zeros_like(k))


def srank(features: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """Effective feature rank srank_δ(Φ) (Kumar et al. 2021, "Implicit
    Under-Parameterization", arXiv 2010.14498).

    ``srank_δ(Φ) = min{k : Σ_{i≤k} σ_i / Σ_i σ_i ≥ 1 − δ}`` with the singular values
    ``σ_1 ≥ σ_2 ≥ …`` of ``Φ`` (no centering, as in the paper).

    Args:
        features: ``(N, d)`` feature matrix (more dims are flattened per sample).
        delta: tail mass allowed [0.01, the paper's value: 99% of the mass].

    Returns a 0-dim int64 tensor; 0 for an all-zero matrix. A rank-k matrix has srank
    ≤ k (= k when δ is small compared to its smallest nonzero singular value's share).
    """
    return srank_from_singular_values(singular_values(features), delta)


def effective_rank_from_singular_values(sv: torch.Tensor) -> torch.Tensor:
    """:func:`effective_rank` from precomputed singular values ``sv``."""
    s = sv.float()
    total = s.sum()
    p = s / total.clamp_min(_TINY)
    # 0·log 0 = 0 (xlogy), so zero singular values contribute nothing.
    entropy = -torch.special.xlogy(p, p).sum()
    return torch.where(total > 0, torch.exp(entropy), torch.zeros_like(entropy))


def effective_rank(features: torch.Tensor) -> torch.Tensor:
    """Effective rank (Roy & Vetterli 2007, "The effective rank: a measure of effective
    dimensionality", EUSIPCO): ``exp(H(p))`` with ``p_i = σ_i / Σ_j σ_j`` the
    ℓ1-normalized singular values of ``Φ`` and ``H`` the Shannon entropy (natural log).

    Between 1 and ``min(N, d)``; equals ``m`` for a matrix with ``m`` equal nonzero
    singular values. Returns a 0-dim float32 tensor (0 for an all-zero matrix).
    """
    return effective_rank_from_singular_values(singular_values(features))


def stable_rank_from_singular_values(sv: torch.Tensor) -> torch.Tensor:
    """:func:`stable_rank` from precomputed singular values ``sv``."""
    s2 = sv.float().square()
    top = s2.max()
    return torch.where(top > 0, s2.sum() / top.clamp_min(_TINY), torch.zeros_like(top))


def stable_rank(features: torch.Tensor) -> torch.Tensor:
    """Stable rank ``‖Φ‖_F² / ‖Φ‖_2² = Σ σ_i² / σ_1²`` (Rudelson & Vershynin 2007).

    Between 1 and ``rank(Φ)``; a continuous lower bound of the rank. Returns a 0-dim
    float32 tensor (0 for an all-zero matrix).
    """
    return stable_rank_from_singular_values(singular_values(features))


def feature_norm(features: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean norm of the feature rows: ``(1/N) Σ_n ‖φ(x_n)‖_2``.

    Each sample's features are flattened first (a conv map ``(C, H, W)`` is one vector).
    Growth of this norm is a known correlate of lost plasticity (Lyle et al. 2024,
    arXiv 2402.18762). Returns a 0-dim float32 tensor.
    """
    return torch.linalg.vector_norm(_features(features, "feature_norm"), dim=1).mean()
