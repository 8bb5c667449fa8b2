"""Weight statistics and policy entropy against hand-computed values."""
import math

import pytest
import torch
import torch.nn as nn

from normrl.metrics.model_stats import (
    distance_from_init, effective_lr, global_norm, grad_norms, policy_entropy, snapshot_weights, weight_layers, weight_norms,
)


def _net():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Conv1d(1, 1, 1), nn.Linear(8, 2))


def test_weight_layers_are_linear_and_conv_in_order():
    assert list(weight_layers(_net())) == ["0", "2", "3"]


def test_weight_norm_and_distance_from_init():
    net = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    init = snapshot_weights(net)
    assert weight_norms(net)["0"].item() == pytest.approx(5.0)
    with torch.no_grad():
        net[0].weight.add_(torch.tensor([[1.0, 2.0], [2.0, 0.0]]))
    assert distance_from_init(net, init)["0"].item() == pytest.approx(3.0)
    assert init["0"][1, 1].item() == 4.0  # the snapshot is a copy


def test_effective_lr_of_a_known_sgd_update():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    net(torch.randn(7, 5)).pow(2).mean().backward()
    before = snapshot_weights(net)
    grads = {n: m.weight.grad.clone() for n, m in weight_layers(net).items()}
    opt.step()
    lr = effective_lr(net, before)
    gn = grad_norms(net)
    for name in ("0", "2"):
        expected = 0.05 * grads[name].norm() / before[name].norm()
        assert lr[name].item() == pytest.approx(expected.item(), rel=1e-5)
        assert gn[name].item() == pytest.approx(grads[name].norm().item(), rel=1e-6)


def test_grad_norm_none_is_zero_and_global_norm():
    net = nn.Sequential(nn.Linear(2, 2))
    assert grad_norms(net)["0"].item() == 0.0
    assert global_norm({"a": torch.tensor(3.0), "b": torch.tensor(4.0)}).item() == pytest.approx(5.0)


@pytest.mark.parametrize("n", [2, 6, 18])
def test_entropy_of_uniform_logits_is_log_n(n):
    assert policy_entropy(torch.full((4, n), 1.7)).item() == pytest.approx(math.log(n), rel=1e-6)


def test_entropy_hand_computed_and_masked():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [1.0, 1e-30, 1e-30]]))
    expected = (-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) + 0.0) / 2
    assert policy_entropy(logits).item() == pytest.approx(expected, abs=1e-6)
    masked = torch.tensor([0.0, 0.0, float("-inf")])
    assert policy_entropy(masked).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="logits"):
        policy_entropy(torch.zeros(2, 3, 4))
