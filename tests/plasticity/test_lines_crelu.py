"""LiNeS per-layer scales and CReLU's width rule against their closed forms."""
import pytest
import torch
import torch.nn as nn

from normrl.plasticity import CReLU, create_intervention, crelu_hidden_widths
from normrl.plasticity.crelu import mlp_param_count
from normrl.plasticity.lines import lines_scales

from .nets import ln_mlp, snapshot, train_step


def test_lines_scales_closed_form():
    assert lines_scales(5, 0.2, 0.8) == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lines_scales(1, 0.3, 0.5) == [0.8]
    with pytest.raises(ValueError):
        lines_scales(0, 0.5, 0.5)


def test_lines_scales_each_layer_update_by_alpha_plus_beta_depth():
    model, opt = ln_mlp(hidden=(8, 8, 8))  # Linear 0, 3, 6, 9: L = 4; LayerNorms 1, 4, 7 join their layer
    iv = create_intervention("lines", alpha=0.1, beta=0.6)
    iv.attach(model, opt)
    iv.on_task_start(1)
    start = snapshot(model)
    for s in range(1, 4):
        train_step(model, opt, None, s)
    trained = snapshot(model)
    iv.on_task_end(1)
    lam = {"0": 0.1, "1": 0.1, "3": 0.3, "4": 0.3, "6": 0.5, "7": 0.5, "9": 0.7}
    assert iv.layer_scales() == pytest.approx({"0": 0.1, "3": 0.3, "6": 0.5, "9": 0.7})
    assert iv.last_event == pytest.approx({"scaled/0": 0.1, "scaled/3": 0.3, "scaled/6": 0.5, "scaled/9": 0.7})
    for name, p in model.named_parameters():
        expected = start[name] + lam[name.split(".")[0]] * (trained[name] - start[name])
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7)


def test_lines_skips_task_zero_by_default_and_defaults_beta():
    model, opt = ln_mlp()
    iv = create_intervention("lines")
    assert (iv.alpha, iv.beta) == (0.5, 0.5)
    iv.attach(model, opt)
    iv.on_task_start(0)
    train_step(model, opt, None, 1)
    before = snapshot(model)
    iv.on_task_end(0)
    assert iv.last_event == {} and all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_crelu_forward_and_width_multiplier():
    x = torch.randn(4, 3, 5, 5)
    y = CReLU()(x)
    assert y.shape == (4, 6, 5, 5) and CReLU.width_multiplier == 2
    assert torch.equal(y, torch.cat([x.clamp_min(0), (-x).clamp_min(0)], dim=1))
    assert CReLU(dim=-1)(torch.randn(2, 7)).shape == (2, 14)


def _crelu_mlp(in_dim, hidden, out_dim):
    layers, width = [], in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), CReLU()]
        width = 2 * h
    return nn.Sequential(*layers, nn.Linear(width, out_dim))


@pytest.mark.parametrize("in_dim,hidden,out_dim", [(4, (64, 64), 2), (784, (100, 100), 10), (10, (256, 128), 3)])
def test_equal_params_rule_is_the_closest_count(in_dim, hidden, out_dim):
    baseline = mlp_param_count(in_dim, hidden, out_dim)
    relu = nn.Sequential(nn.Linear(in_dim, hidden[0]), nn.ReLU(), *[m for a, b in zip(hidden, hidden[1:]) for m in (nn.Linear(a, b), nn.ReLU())], nn.Linear(hidden[-1], out_dim))
    assert sum(p.numel() for p in relu.parameters()) == baseline
    widths = crelu_hidden_widths(hidden, "equal_params", in_dim=in_dim, out_dim=out_dim)
    count = sum(p.numel() for p in _crelu_mlp(in_dim, widths, out_dim).parameters())
    assert count == mlp_param_count(in_dim, widths, out_dim, crelu=True)
    best = abs(count - baseline)
    ratio = [h / hidden[0] for h in hidden]
    for w0 in range(1, hidden[0] + 1):  # every common scaling of the widths
        other = tuple(max(1, int(w0 * r + 0.5)) for r in ratio)
        assert abs(mlp_param_count(in_dim, other, out_dim, crelu=True) - baseline) >= best


def test_width_rule_examples_and_equal_width():
    assert crelu_hidden_widths((64, 64), in_dim=4, out_dim=2) == (46, 46)
    assert crelu_hidden_widths((100, 100), in_dim=784, out_dim=10) == (91, 91)  # Kumar et al.'s 0.09 cut
    assert crelu_hidden_widths((64, 64), "equal_width", in_dim=4, out_dim=2) == (64, 64)
    assert mlp_param_count(4, (64, 64), 2, crelu=True) == 4 * 64 + 64 + 128 * 64 + 64 + 128 * 2 + 2
    with pytest.raises(ValueError, match="rule must be one of"):
        crelu_hidden_widths((64,), "double", in_dim=4, out_dim=2)
