"""AdaB²N: the properties stated in docs/algorithms/adab2n.md, checked against closed forms."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.normalization import create_norm_layer
from normrl.normalization.layers.adab2n import AdaB2N, adab2n_aux_loss, adab2n_layers, adab2n_task_ids


def _etas(layer, steps, shape=(6, 4)):
    out = []
    for _ in range(steps):
        layer(torch.randn(shape))
        out.append(layer.eta.item())
    return out


@pytest.mark.parametrize("kappa", [0.1, 0.4, 0.7])
def test_running_step_size_converges_to_one_minus_one_minus_m_to_the_kappa(kappa):
    m = 0.1
    layer = AdaB2N(1, momentum=m, kappa=kappa)
    etas = _etas(layer, 2000, shape=(2, 1))
    assert etas[0] == pytest.approx(m**kappa)
    assert etas[1] == pytest.approx(etas[0] / (etas[0] + (1 - m) ** kappa))
    assert etas[-1] == pytest.approx(1 - (1 - m) ** kappa, rel=1e-4)
    assert all(a > b for a, b in zip(etas[:5], etas[1:6])) and all(a >= b for a, b in zip(etas, etas[1:]))  # decreasing to the limit


def test_kappa_one_is_a_plain_ema_and_kappa_zero_a_cumulative_mean():
    assert _etas(AdaB2N(4, momentum=0.1, kappa=1.0), 5) == pytest.approx([0.1] * 5)
    layer = AdaB2N(3, kappa=0.0)
    batches = [torch.randn(5, 3) * (i + 1) + i for i in range(6)]
    etas = []
    for b in batches:
        layer(b)
        etas.append(layer.eta.item())
    assert etas == pytest.approx([1 / s for s in range(1, 7)])
    torch.testing.assert_close(layer.running_mean, torch.stack([b.mean(0) for b in batches]).mean(0))
    torch.testing.assert_close(layer.running_var, torch.stack([b.var(0, unbiased=False) for b in batches]).mean(0))


@pytest.mark.parametrize("layout", ["nc", "nchw"])
def test_one_task_equals_batchnorm_with_biased_running_variance(layout):
    layer = create_norm_layer("adab2n", 5, layout=layout, momentum=0.2)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-1, 1)
    shape = (8, 5) if layout == "nc" else (8, 5, 3, 2)
    dims = (0,) if layout == "nc" else (0, 2, 3)
    rm, rv = torch.zeros(5), torch.ones(5)
    for _ in range(3):
        x = torch.randn(shape) * 3 + 1
        y = layer(x)
        ref = F.batch_norm(x, None, None, layer.weight, layer.bias, True, 0.0, 1e-5)
        torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
        rm = 0.8 * rm + 0.2 * x.mean(dims)
        rv = 0.8 * rv + 0.2 * x.var(dims, unbiased=False)  # biased, unlike torch's BN
    torch.testing.assert_close(layer.running_mean, rm)
    torch.testing.assert_close(layer.running_var, rv)


def test_balanced_counts_with_zero_logits_give_uniform_weights():
    layer = AdaB2N(3)
    ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    torch.testing.assert_close(layer.sample_weights(ids), torch.full((8,), 1 / 8))


def test_unbalanced_counts_follow_the_dirichlet_posterior_mean():
    layer = AdaB2N(2)
    with torch.no_grad():
        layer.task_logits[1] = math.log(3.0)
    ids = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])  # n_0 = 2, n_1 = 8
    # pi_0 = (1 + 2) / (1 + 2 + 3 + 8) = 3/14, pi_1 = 11/14
    expected = torch.tensor([3 / 14 / 2] * 2 + [11 / 14 / 8] * 8)
    torch.testing.assert_close(layer.sample_weights(ids), expected)
    # The official code's denominator also counts seen tasks absent from the batch.
    official = AdaB2N(2, present_tasks_only=False)
    official.on_task_start(2)  # tasks 0, 1, 2 seen
    w = official.sample_weights(ids)
    torch.testing.assert_close(w, torch.tensor([3 / 13 / 2] * 2 + [9 / 13 / 8] * 8))
    assert w.sum().item() == pytest.approx(12 / 13)


def test_weighted_statistics_and_aux_loss_by_hand():
    layer = AdaB2N(2, layout="nchw", momentum=0.5)
    layer.on_task_start(1)
    x = torch.randn(4, 2, 3, 3)
    ids = torch.tensor([0, 1, 1, 1])
    w = torch.tensor([2 / 6, 4 / 6 / 3, 4 / 6 / 3, 4 / 6 / 3])  # pi_0=(1+1)/6, pi_1=(1+3)/6
    per_sample_mean = x.mean((2, 3))
    mean = (w[:, None] * per_sample_mean).sum(0)
    var = (w[:, None] * (x - mean.view(1, 2, 1, 1)).square().mean((2, 3))).sum(0)
    with adab2n_task_ids(layer, ids):
        y = layer(x)
    assert layer.task_ids is None  # cleared after the block
    expected = (x - mean.view(1, 2, 1, 1)) / torch.sqrt(var.view(1, 2, 1, 1) + 1e-5)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    rm, rv = 0.5 * mean, 0.5 + 0.5 * var
    torch.testing.assert_close(layer.running_mean, rm)
    torch.testing.assert_close(layer.running_var, rv)
    aux = F.mse_loss(mean, rm) + F.mse_loss(var, rv)
    torch.testing.assert_close(layer.aux_loss, aux)
    # The loss reaches the task logits through the weights.
    (y.square().sum() + adab2n_aux_loss(layer)).backward()
    assert layer.task_logits.grad[:2].abs().min() > 0 and layer.task_logits.grad[2:].abs().max() == 0


def test_without_ids_every_sample_is_the_current_task():
    layer = AdaB2N(3)
    layer.on_task_start(2)
    x = torch.randn(6, 3)
    y = layer(x)  # one task present: ordinary batch statistics
    torch.testing.assert_close(y, F.batch_norm(x, None, None, layer.weight, layer.bias, True, 0.0, 1e-5), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="task ids for a batch"):
        with adab2n_task_ids(layer, torch.tensor([0, 1])):
            layer(x)
    with pytest.raises(ValueError, match="max_tasks"):
        layer.on_task_start(100)


def test_eval_is_batchnorm_with_the_running_statistics():
    layer = AdaB2N(4, layout="nchw", kappa=0.4)
    for t in range(3):
        layer.on_task_start(t)
        with adab2n_task_ids(layer, torch.randint(0, t + 1, (8,))):
            layer(torch.randn(8, 4, 2, 2) + t)
    layer.eval()
    ref = nn.BatchNorm2d(4)
    ref.load_state_dict({k: v for k, v in layer.state_dict().items() if k in ref.state_dict()}, strict=False)
    ref.running_mean.copy_(layer.running_mean)
    ref.running_var.copy_(layer.running_var)
    ref.eval()
    x = torch.randn(5, 4, 2, 2)
    torch.testing.assert_close(layer(x), ref(x))


def test_context_reaches_every_layer_of_a_model_and_restores():
    model = nn.Sequential(nn.Linear(3, 4), AdaB2N(4), nn.ReLU(), nn.Linear(4, 4), AdaB2N(4))
    ids = torch.tensor([0, 1, 1])
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.append(mod.task_ids)) for m in adab2n_layers(model)]
    with adab2n_task_ids(model, ids):
        model(torch.randn(3, 3))
    for h in hooks:
        h.remove()
    assert len(seen) == 2 and all(s is ids for s in seen)
    assert all(m.task_ids is None for m in adab2n_layers(model))
    assert adab2n_aux_loss(nn.Linear(2, 2)).item() == 0.0
    with pytest.raises(ValueError, match="kappa"):
        AdaB2N(4, kappa=1.5)
