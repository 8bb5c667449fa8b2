"""AdamP / SGDP (arXiv 2006.08217): radial removal when the cosine check fires, plain
Adam/SGD otherwise, wd_ratio only when projected."""
import math

import pytest
import torch
import torch.nn as nn

from normrl.normalization import SGDP, AdamP
from normrl.normalization.adamp import radial_projection


def _scale_invariant_problem(per_channel: bool, seed=0):
    """Weight W feeding a normalization without affine: LayerNorm makes the whole
    tensor scale-invariant, BatchNorm (train mode) every row."""
    g = torch.Generator().manual_seed(seed)
    weight = nn.Parameter(torch.randn(16, 8, generator=g) * 0.3)
    x = torch.randn(64, 8, generator=g)
    readout = torch.randn(16, 3, generator=g)
    target = torch.randn(64, 3, generator=g)
    norm = nn.BatchNorm1d(16, affine=False) if per_channel else nn.LayerNorm(16, elementwise_affine=False)

    def loss_fn():
        return ((norm(x @ weight.t()) @ readout - target) ** 2).mean()

    return weight, loss_fn


def _radial_fraction(delta_w, w):
    return (delta_w * w).sum().abs().item() / (delta_w.norm() * w.norm()).item()


def _one_step(opt_cls, per_channel, **kw):
    weight, loss_fn = _scale_invariant_problem(per_channel)
    opt = opt_cls([weight], **kw)
    fractions = []
    for _ in range(4):
        before = weight.detach().clone()
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
        fractions.append(_radial_fraction(weight.detach() - before, before))
    return fractions


@pytest.mark.parametrize("per_channel", [False, True], ids=["layer-wise", "channel-wise"])
def test_update_has_no_radial_component_on_scale_invariant_weights(per_channel):
    adamp = _one_step(AdamP, per_channel, lr=1e-2)
    adam = _one_step(torch.optim.Adam, per_channel, lr=1e-2)
    assert max(adamp) < 1e-5
    assert max(adam) > 1e-3  # plain Adam's update does move the norm: the test can fail
    sgdp = _one_step(SGDP, per_channel, lr=0.5, momentum=0.9, nesterov=True)
    sgd = _one_step(torch.optim.SGD, per_channel, lr=0.5, momentum=0.9, nesterov=True)
    assert max(sgdp) < 1e-5
    assert max(sgd) > 1e-3  # momentum carries radial components from earlier steps


def _mlp_trajectory(opt_factory, steps=5):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 2))
    x, y = torch.randn(32, 5), torch.randn(32, 2)
    opt = opt_factory(model.parameters())
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def test_adamp_equals_adam_when_the_check_never_fires():
    ours = _mlp_trajectory(lambda p: AdamP(p, lr=1e-2, delta=0.0))
    ref = _mlp_trajectory(lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("nesterov,factor", [(False, 1.0), (True, 1.9)])
def test_adamp_first_step_closed_form(nesterov, factor):
    """Step 1 with eps=0: m = (1−β₁)g, v = (1−β₂)g², so m̂/√v̂ = sign(g) and the update is
    −lr·sign(g); the Nesterov direction (β₁m + (1−β₁)g)/√v̂ /(1−β₁) is 1.9·sign(g)."""
    w = nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
    w.grad = torch.tensor([[0.2, -0.1], [0.4, 0.3]])
    opt = AdamP([w], lr=0.1, betas=(0.9, 0.999), eps=0.0, delta=0.0, nesterov=nesterov)
    before = w.detach().clone()
    opt.step()
    torch.testing.assert_close(w.detach(), before - 0.1 * factor * w.grad.sign())


def test_sgdp_equals_sgd_when_the_check_never_fires():
    ours = _mlp_trajectory(lambda p: SGDP(p, lr=0.1, momentum=0.9, nesterov=True, delta=0.0))
    ref = _mlp_trajectory(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, foreach=False))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_vector_parameters_are_never_projected():
    """A bias-like vector with default delta behaves exactly like Adam."""
    def run(opt_cls):
        b = nn.Parameter(torch.tensor([1.0, 2.0, -1.0]))
        c = torch.tensor([1.0, 0.0, 1.0])
        opt = opt_cls([b], lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            (b * c).sum().backward()  # gradient c is orthogonal to b at the start: a matrix would be projected
            opt.step()
        return b.detach()

    torch.testing.assert_close(run(AdamP), run(lambda p, lr: torch.optim.Adam(p, lr=lr, foreach=False)), rtol=1e-6, atol=1e-7)


def test_radial_projection_closed_form_and_view_order():
    dim = 100  # threshold delta/sqrt(dim) = 0.01 for a single row
    e = torch.eye(dim)
    w = (2.0 * e[0]).view(1, dim)
    update = (e[0] + e[2]).view(1, dim)
    for cos, fires in [(0.005, True), (0.02, False)]:
        grad = (cos * e[0] + math.sqrt(1 - cos**2) * e[1]).view(1, dim)
        out, projected = radial_projection(w, grad, update, delta=0.1, eps=1e-8)
        assert bool(projected) is fires
        torch.testing.assert_close(out, e[2].view(1, dim) if fires else update)

    # Two rows with opposite radial gradients: the channel view does not fire
    # (|cos| = 0.6 per row), the layer view does (the dot products cancel).
    w2 = torch.stack([e[0][:50] * 1.0, e[1][:50] * 1.0])
    g2 = torch.stack([0.6 * e[0][:50] + 0.8 * e[2][:50], -0.6 * e[1][:50] + 0.8 * e[3][:50]])
    d2 = torch.stack([e[0][:50], e[1][:50] * 0.5])
    out, projected = radial_projection(w2, g2, d2, delta=0.1, eps=1e-8)
    assert bool(projected)
    # whole-tensor ŵ = (e0, e1)/√2, ⟨ŵ, d⟩ = 1.5/√2: d − ŵ·1.5/√2 = (e0·0.25, −e1·0.25)
    torch.testing.assert_close(out, torch.stack([0.25 * e[0][:50], -0.25 * e[1][:50]]))
    assert abs((out * w2).sum().item()) < 1e-6 and (out[0] * w2[0]).sum().item() == pytest.approx(0.25)


@pytest.mark.parametrize("opt_cls,kw,wd_scale", [(AdamP, {}, 1.0), (SGDP, {"momentum": 0.5}, 1 / (1 - 0.5))])
def test_weight_decay_ratio_applies_only_when_projected(opt_cls, kw, wd_scale):
    lr, wd = 0.01, 0.3

    def step(delta, weight_decay):
        weight, loss_fn = _scale_invariant_problem(per_channel=False)
        opt = opt_cls([weight], lr=lr, weight_decay=weight_decay, delta=delta, wd_ratio=0.1, **kw)
        before = weight.detach().clone()
        loss_fn().backward()
        opt.step()
        return before, weight.detach()

    for delta, ratio in [(0.1, 0.1), (0.0, 1.0)]:  # fires (projected) / never fires
        before, with_wd = step(delta, wd)
        _, without_wd = step(delta, 0.0)
        torch.testing.assert_close(with_wd - without_wd, -lr * wd * ratio * wd_scale * before, rtol=1e-4, atol=1e-7)


def test_invalid_hyperparameters_raise():
    p = [nn.Parameter(torch.zeros(2, 2))]
    with pytest.raises(ValueError, match="delta"):
        AdamP(p, delta=-1.0)
    with pytest.raises(ValueError, match="betas"):
        AdamP(p, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="Nesterov"):
        SGDP(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="momentum"):
        SGDP(p, lr=0.1, momentum=1.5)
