"""Numbers for the pure plasticity metrics: closed forms and hand-computed values."""
import math

import pytest
import torch

from normrl.metrics import active_fraction, dormant_ratio, effective_rank, feature_norm, srank, stable_rank
from normrl.metrics.functional import unit_scores


def _matrix_with_singular_values(sv, n=20, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.zeros(n, d, dtype=torch.float64)
    for i, x in enumerate(sv):
        s[i, i] = x
    return (u @ s @ v.T).float()


@pytest.mark.parametrize("k", [1, 3, 7])
def test_srank_of_rank_k_matrix_is_k(k):
    g = torch.Generator().manual_seed(k)
    phi = torch.randn(64, k, generator=g) @ torch.randn(k, 32, generator=g)
    assert srank(phi).item() == k
    assert srank(phi).dtype == torch.int64


def test_srank_threshold_hand_computed():
    # singular values 10, 5, 3, 2 (sum 20): cumulative shares .5, .75, .9, 1.0
    phi = _matrix_with_singular_values([10, 5, 3, 2])
    assert srank(phi, delta=0.01).item() == 4
    assert srank(phi, delta=0.1).item() == 3   # 0.9 >= 0.9
    assert srank(phi, delta=0.25).item() == 2
    assert srank(phi, delta=0.6).item() == 1
    assert srank(torch.zeros(5, 4)).item() == 0


@pytest.mark.parametrize("m", [1, 2, 5, 9])
def test_effective_rank_of_m_equal_singular_values_is_m(m):
    phi = _matrix_with_singular_values([3.0] * m)
    assert effective_rank(phi).item() == pytest.approx(m, rel=1e-5)


def test_effective_rank_closed_form():
    # p = (2/3, 1/3): exp(-(2/3 ln 2/3 + 1/3 ln 1/3))
    phi = _matrix_with_singular_values([2.0, 1.0])
    expected = math.exp(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    assert effective_rank(phi).item() == pytest.approx(expected, rel=1e-5)
    assert effective_rank(torch.zeros(3, 3)).item() == 0.0


def test_stable_rank_closed_forms():
    assert stable_rank(_matrix_with_singular_values([4.0, 2.0, 1.0])).item() == pytest.approx((16 + 4 + 1) / 16, rel=1e-5)
    assert stable_rank(torch.eye(6)).item() == pytest.approx(6.0)
    rank1 = torch.outer(torch.arange(1.0, 6.0), torch.arange(1.0, 4.0))
    assert stable_rank(rank1).item() == pytest.approx(1.0, rel=1e-5)
    # ||Φ||_F² / ||Φ||_2² directly
    phi = torch.randn(30, 10)
    direct = phi.square().sum() / torch.linalg.matrix_norm(phi, ord=2) ** 2
    assert stable_rank(phi).item() == pytest.approx(direct.item(), rel=1e-5)


def test_feature_norm_is_mean_row_norm():
    phi = torch.tensor([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]])
    assert feature_norm(phi).item() == pytest.approx((5 + 1 + 0) / 3)
    conv = torch.zeros(2, 2, 2, 2)
    conv[0, 0, 0, 0] = 3.0
    conv[0, 1, 1, 1] = 4.0
    assert feature_norm(conv).item() == pytest.approx(2.5)  # rows flattened: norms 5 and 0


def test_three_always_zero_units_of_ten():
    acts = torch.relu(torch.randn(128, 10)) + 0.1
    acts[:, [1, 4, 7]] = 0.0
    assert dormant_ratio(acts).item() >= 0.3
    assert dormant_ratio(acts, tau=0.0).item() == pytest.approx(0.3)
    assert active_fraction(acts).item() == pytest.approx(0.7)


def test_redo_scores_hand_computed():
    # mean |h| per unit: [1, 2, 0.03, 0.97] -> layer mean 1.0 -> scores identical
    acts = torch.tensor([[1.0, 4.0, 0.06, 0.97], [-1.0, 0.0, 0.0, -0.97]])
    scores = unit_scores(acts)
    assert torch.allclose(scores, torch.tensor([1.0, 2.0, 0.03, 0.97]))
    assert dormant_ratio(acts, tau=0.025).item() == 0.0
    assert dormant_ratio(acts, tau=0.03).item() == 0.25  # <= includes the boundary
    assert dormant_ratio(acts, tau=0.97).item() == 0.5
    assert dormant_ratio(acts, tau=0.0).item() == 0.0
    # all-zero layer: every unit dormant and dead, nothing active
    assert dormant_ratio(torch.zeros(4, 3)).item() == 1.0
    assert active_fraction(torch.zeros(4, 3)).item() == 0.0


def test_conv_units_are_channels():
    acts = torch.ones(4, 3, 5, 5)
    acts[:, 1] = 0.0           # dead channel
    acts[2, 2, 4, 4] = 0.0     # one zero position does not kill channel 2
    acts[:, 0] = 0.0
    acts[0, 0, 0, 0] = 1.0     # channel 0 active at one position of one sample
    assert active_fraction(acts).item() == pytest.approx(2 / 3)
    assert dormant_ratio(acts, tau=0.0).item() == pytest.approx(1 / 3)
    # channel 0 mean |h| = 1/100, channel 2 = 99/100, layer mean = 1/3 -> scores .03, 0, 2.97
    assert torch.allclose(unit_scores(acts), torch.tensor([0.03, 0.0, 2.97]), atol=1e-6)
    assert dormant_ratio(acts, tau=0.025).item() == pytest.approx(1 / 3)
    assert dormant_ratio(acts, tau=0.03).item() == pytest.approx(2 / 3)


def test_results_stay_on_device_as_0dim_tensors():
    phi = torch.randn(16, 8)
    for fn in (dormant_ratio, active_fraction, srank, effective_rank, stable_rank, feature_norm):
        out = fn(phi)
        assert isinstance(out, torch.Tensor) and out.dim() == 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="tau"):
        dormant_ratio(torch.ones(2, 2), tau=-1)
    with pytest.raises(ValueError, match="delta"):
        srank(torch.ones(2, 2), delta=1.5)
    with pytest.raises(ValueError, match="shape"):
        srank(torch.ones(5))


def test_batched_singular_values_match_svd():
    from normrl.metrics.functional import batched_singular_values, singular_values, srank_from_singular_values

    g = torch.Generator().manual_seed(3)
    wide = torch.randn(32, 100, generator=g)                                    # N < d: 32x32 Gram
    narrow = torch.randn(32, 5, generator=g) @ torch.randn(5, 8, generator=g)   # rank 5, N > d: 8x8 Gram
    conv = torch.relu(torch.randn(32, 3, 4, 4, generator=g))                    # flattened to 48 > N
    small = torch.randn(4, 3, generator=g)                                      # other batch size: 3x3 Gram
    out = batched_singular_values([wide, narrow, conv, small])
    for sv, mat in zip(out, (wide, narrow, conv, small)):
        ref = singular_values(mat)
        assert sv.shape == ref.shape
        assert torch.allclose(sv, ref, rtol=1e-4, atol=1e-5 * ref[0].item())
    assert srank_from_singular_values(out[1]).item() == srank(narrow).item() == 5
