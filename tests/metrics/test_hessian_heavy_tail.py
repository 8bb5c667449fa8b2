"""Top Hessian eigenvalue and the FARMS heavy-tail exponent against known spectra."""
import math

import pytest
import torch
import torch.nn as nn

from normrl.metrics.heavy_tail import farms_eigenvalues, heavy_tail_alpha, layer_heavy_tail_alphas, power_law_alpha
from normrl.metrics.hessian import hessian_top_eigenvalue


def _symmetric(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T


def test_hessian_of_a_quadratic_is_its_matrix_top_eigenvalue():
    a = _symmetric([5.0, 2.0, 1.0, -0.5, 0.1, 0.0])
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    top = hessian_top_eigenvalue(lambda: 0.5 * x @ a @ x + x.sum(), [x], iters=60)
    assert top.item() == pytest.approx(5.0, rel=1e-8)


def test_hessian_across_several_tensors_and_negative_dominant_eigenvalue():
    a = _symmetric([-7.0, 3.0, 1.0, 0.5], seed=1)
    x1 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    x2 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    loss = lambda: 0.5 * torch.cat([x1, x2]) @ a @ torch.cat([x1, x2])
    assert hessian_top_eigenvalue(loss, [x1, x2], iters=80).item() == pytest.approx(-7.0, rel=1e-8)
    early = hessian_top_eigenvalue(loss, [x1, x2], iters=500, tol=1e-12)
    assert early.item() == pytest.approx(-7.0, rel=1e-8)
    rng = torch.get_rng_state()
    hessian_top_eigenvalue(loss, [x1, x2], iters=3)
    assert torch.equal(rng, torch.get_rng_state())  # the global RNG is never used
    with pytest.raises(ValueError, match="requires_grad"):
        hessian_top_eigenvalue(loss, [torch.zeros(2)])


@pytest.mark.parametrize("alpha", [2.0, 3.0])
def test_power_law_fit_recovers_pareto_exponent(alpha):
    g = torch.Generator().manual_seed(int(alpha))
    u = torch.rand(20000, generator=g, dtype=torch.float64)
    samples = 0.5 * u ** (-1.0 / (alpha - 1.0))  # density ∝ λ^(−α) above 0.5
    fit, xmin, d = power_law_alpha(samples, "median")
    assert fit == pytest.approx(alpha, abs=0.1)  # Hill std ≈ (α−1)/√(N/2) ≈ 0.01–0.02
    ks_fit, ks_xmin, ks_d = power_law_alpha(samples[:3000], "ks")
    assert ks_fit == pytest.approx(alpha, abs=0.15) and ks_xmin >= 0.5 and 0 <= ks_d < 0.05
    with pytest.raises(ValueError, match="xmin must be one of"):
        power_law_alpha(samples, "max")


def test_heavy_tailed_matrix_has_the_rmt_exponent():
    # Entries with a Pareto tail P(|w| > x) = x^(−μ), μ = 1 < 2: the ESD of WᵀW has a power-law
    # tail with α = 1 + μ/2 = 1.5 (Martin & Mahoney, arXiv 1810.01075, Table 1). Tolerance 0.15.
    g = torch.Generator().manual_seed(0)
    w = torch.rand(300, 600, generator=g, dtype=torch.float64) ** -1.0 * torch.sign(torch.randn(300, 600, generator=g, dtype=torch.float64))
    assert heavy_tail_alpha(w) == pytest.approx(1.5, abs=0.15)
    assert heavy_tail_alpha(w, farms=False) == pytest.approx(1.5, abs=0.15)


def test_farms_removes_the_aspect_ratio_bias():
    g = torch.Generator().manual_seed(0)
    shapes = [(100, 1000), (200, 800), (400, 400), (1000, 100)]
    mats = [torch.randn(*s, generator=g) for s in shapes]
    plain = [heavy_tail_alpha(m, farms=False) for m in mats]
    farms = [heavy_tail_alpha(m) for m in mats]
    assert max(plain) - min(plain) > 1.0  # the same i.i.d. matrix, different shapes
    assert max(farms) - min(farms) < 0.15
    eigs = farms_eigenvalues(mats[2])
    assert eigs.numel() == 10 * 10 * 100  # 10×10 windows of 100×200, 100 eigenvalues each


def test_conv_and_model_helper():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    eigs = farms_eigenvalues(model[0].weight)
    assert eigs.numel() == 9 * 8  # per kernel position a (16, 8) matrix, oriented 8×16: one 8×16 window, 8 eigenvalues
    alphas = layer_heavy_tail_alphas(model)
    assert set(alphas) == {"0", "3", "5"}
    assert all(math.isfinite(a) and a > 1 for a in alphas.values())
    with pytest.raises(ValueError, match="at least 5"):
        heavy_tail_alpha(torch.randn(2, 3))  # one 1×2 window per column start: 2 eigenvalues
    assert layer_heavy_tail_alphas(nn.Sequential(nn.Linear(3, 2))) == {}  # skipped, not an error
