"""L2, L2-init and Parseval penalties and their gradients against the formulas."""
import math

import pytest
import torch
import torch.nn as nn

from normrl.networks import MinAtarCNN
from normrl.plasticity import create_intervention
from normrl.plasticity.parseval import parseval_penalty

from .nets import ln_mlp


def _norm_param_ids(model):
    return {id(p) for m in model.modules() if type(m).__name__.endswith("LayerNorm") for p in m.parameters()}


def _grads(penalty, params):
    return torch.autograd.grad(penalty, params, allow_unused=True)


def test_l2_penalty_and_gradient_equal_the_formula():
    model, opt = ln_mlp()
    iv = create_intervention("l2", lam=0.3)
    iv.attach(model, opt)
    norm_ids = _norm_param_ids(model)
    assert norm_ids  # the layernorm gains/offsets exist and are excluded
    regular = [p for p in model.parameters() if id(p) not in norm_ids]
    expected = 0.5 * 0.3 * sum(float((p.detach().double() ** 2).sum()) for p in regular)
    pen = iv.penalty()
    assert pen.dim() == 0 and math.isclose(pen.item(), expected, rel_tol=1e-6)
    params = list(model.parameters())
    for p, g in zip(params, _grads(pen, params)):
        if id(p) in norm_ids:
            assert g is None or torch.count_nonzero(g) == 0
        else:
            torch.testing.assert_close(g, 0.3 * p.detach())


def test_l2_include_norm_adds_the_norm_parameters():
    model, opt = ln_mlp()
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__.endswith("LayerNorm"):
                m.weight.fill_(2.0)
    without = create_intervention("l2", lam=1.0)
    with_norm = create_intervention("l2", lam=1.0, include_norm=True)
    without.attach(model, opt)
    with_norm.attach(model, opt)
    norm_sq = sum(float((p.detach().double() ** 2).sum()) for m in model.modules() if type(m).__name__.endswith("LayerNorm") for p in m.parameters())
    assert math.isclose(with_norm.penalty().item() - without.penalty().item(), 0.5 * norm_sq, rel_tol=1e-5)


def test_l2_init_is_zero_at_attach_and_the_squared_distance_after():
    model, opt = ln_mlp()
    iv = create_intervention("l2_init", lam=0.2)
    iv.attach(model, opt)
    assert iv.penalty().item() == 0.0
    theta0 = {id(p): p.detach().clone() for p in model.parameters()}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    norm_ids = _norm_param_ids(model)
    regular = [p for p in model.parameters() if id(p) not in norm_ids]
    dist_sq = sum(float(((p.detach() - theta0[id(p)]).double() ** 2).sum()) for p in regular)
    pen = iv.penalty()
    assert math.isclose(pen.item(), 0.5 * 0.2 * dist_sq, rel_tol=1e-5)
    params = list(model.parameters())
    for p, grad in zip(params, _grads(pen, params)):
        if id(p) in norm_ids:
            assert grad is None or torch.count_nonzero(grad) == 0
        else:
            torch.testing.assert_close(grad, 0.2 * (p.detach() - theta0[id(p)]))
    # Squared, not Plasticine's unsquared norm: doubling the distance quadruples it.
    with torch.no_grad():
        for p in regular:
            p.copy_(theta0[id(p)] + 2 * (p - theta0[id(p)]))
    assert math.isclose(iv.penalty().item(), 4 * pen.item(), rel_tol=1e-5)


def test_l2_init_keeps_its_anchor_while_training():
    model, opt = ln_mlp()
    iv = create_intervention("l2_init", lam=1.0)
    iv.attach(model, opt)
    first = [p.detach().clone() for p in iv._init]
    x = torch.randn(16, 6)
    for _ in range(3):
        loss = model(x).square().mean() + iv.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(first, iv._init))
    assert iv.penalty().item() > 0


def _hidden_parseval(model, lam, width_ref, targets):
    total = 0.0
    for name, s in targets.items():
        w = model.get_submodule(name).weight.detach().double().flatten(1)
        c = lam * (width_ref / w.shape[0]) ** 2 if width_ref else lam
        total += c * float(((w @ w.T - s * torch.eye(w.shape[0], dtype=torch.float64)) ** 2).sum())
    return total


def test_parseval_penalty_equals_the_formula_on_hidden_layers_only():
    model, opt = ln_mlp(hidden=(16, 8))
    iv = create_intervention("parseval", lam=1e-3)
    iv.attach(model, opt)
    assert sorted(iv.targets) == ["0", "3"]  # the two hidden Linears; the output layer "6" is excluded
    for name, s in iv.targets.items():
        w = model.get_submodule(name).weight.detach()
        assert math.isclose(s, float(w.square().sum()) / w.shape[0], rel_tol=1e-6)  # s="init"
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.7)
    assert math.isclose(iv.penalty().item(), _hidden_parseval(model, 1e-3, 64, iv.targets), rel_tol=1e-5)


def test_parseval_fixed_s_no_width_scaling_and_conv_flattening():
    torch.manual_seed(0)
    model = MinAtarCNN(4, 3)
    iv = create_intervention("parseval", lam=0.5, s=2.0, width_ref=0)
    iv.attach(model, None)
    assert sorted(iv.targets) == ["1", "4"]  # conv (16, 4, 3, 3) and the hidden Linear; not the output
    assert set(iv.targets.values()) == {2.0}
    assert math.isclose(iv.penalty().item(), _hidden_parseval(model, 0.5, 0, iv.targets), rel_tol=1e-5)


def test_parseval_is_zero_on_orthogonal_rows_with_init_target():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=math.sqrt(2))
    iv = create_intervention("parseval")
    iv.attach(model, None)
    assert all(math.isclose(s, 2.0, rel_tol=1e-5) for s in iv.targets.values())  # gain² of an orthogonal init
    assert iv.penalty().item() < 1e-6
    assert parseval_penalty(torch.eye(3) * 2, 4.0).item() == 0.0


@pytest.mark.parametrize("name", ["l2", "l2_init", "parseval"])
def test_bad_coefficients_raise(name):
    with pytest.raises(ValueError):
        create_intervention(name, lam=-1.0)


def test_fused_penalties_match_plain_autograd(monkeypatch):
    import normrl.plasticity.l2 as l2_module

    model, opt = ln_mlp()
    for p in model.parameters():
        p.data.add_(0.1)
    ivs = [create_intervention("l2", lam=0.3), create_intervention("l2_init", lam=0.2), create_intervention("parseval", lam=0.01)]
    for iv in ivs:
        iv.attach(model, opt)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    params = list(model.parameters())
    fused = [(iv.penalty(), None) for iv in ivs]
    fused = [(pen, _grads(pen, params)) for pen, _ in fused]
    monkeypatch.setattr(l2_module, "_FOREACH_TENSOR_SCALAR", False)
    iv = ivs[2]
    plain_parseval = sum(iv.coefficient(m.weight.shape[0]) * parseval_penalty(m.weight, iv._targets[id(m.weight)]) for _, m in iv._layers)
    plain = [ivs[0].penalty(), ivs[1].penalty(), plain_parseval]
    for (pen, grads), ref in zip(fused, plain):
        torch.testing.assert_close(pen, ref)
        for g, r in zip(grads, _grads(ref, params)):
            if r is None:
                assert g is None or torch.count_nonzero(g) == 0
            else:
                torch.testing.assert_close(g, r)
