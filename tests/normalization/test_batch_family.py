"""The batch-dependent family: CN, BCN + WSConv2d, PowerNorm, Unified Normalization,
EvoNorm-B0/S0 against their formulas."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.normalization import create_norm_layer
from normrl.normalization.ws_conv import WSConv2d, standardize_weight


def _perturb(layer):
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.2 * torch.randn_like(p))


def test_continual_norm_is_groupnorm_without_affine_then_batchnorm():
    layer = create_norm_layer("continual_norm", 8, layout="nchw", num_groups=2)
    _perturb(layer)
    x = torch.randn(6, 8, 3, 3) * 2 + 1
    bn = nn.BatchNorm2d(8)
    bn.load_state_dict(layer.bn.state_dict())
    torch.testing.assert_close(layer(x), bn(F.group_norm(x, 2, eps=1e-5)))
    torch.testing.assert_close(layer.bn.running_mean, bn.running_mean)
    assert not any("gn" in n for n, _ in layer.named_parameters())
    assert create_norm_layer("continual_norm", 20, layout="nchw").gn.num_groups == 20
    assert create_norm_layer("continual_norm", 20).gn.num_groups == 1


def test_bcn_is_batchnorm_then_groupnorm_and_ws_conv_standardizes_filters():
    layer = create_norm_layer("bcn", 8, layout="nchw")
    assert layer.gn.num_groups == 4  # two channels per group at least
    _perturb(layer)
    x = torch.randn(6, 8, 3, 3) + 2
    y_bn = F.batch_norm(x, None, None, layer.bn.weight, layer.bn.bias, True, 0.0, 1e-5)
    torch.testing.assert_close(layer(x), F.group_norm(y_bn, 4, layer.gn.weight, layer.gn.bias, 1e-5), rtol=1e-5, atol=1e-5)
    conv = WSConv2d(3, 5, 3, padding=1, bias=False)
    w_hat = standardize_weight(conv.weight)
    flat = w_hat.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat.var(1, unbiased=False), torch.ones(5) * flat.var(1, unbiased=False)[0], atol=1e-3, rtol=0)
    w = conv.weight.flatten(1)
    expected_w = ((w - w.mean(1, keepdim=True)) / torch.sqrt(w.var(1, unbiased=False, keepdim=True) + 1e-5)).view_as(conv.weight)
    img = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(conv(img), F.conv2d(img, expected_w, padding=1), rtol=1e-5, atol=1e-5)
    # Scaling the stored filter does not change the output (scale invariance of WS).
    exact = WSConv2d(3, 5, 3, padding=1, bias=False, eps=0.0)
    scaled = WSConv2d(3, 5, 3, padding=1, bias=False, eps=0.0)
    with torch.no_grad():
        scaled.weight.copy_(exact.weight * 7.0)
    torch.testing.assert_close(scaled(img), exact(img), rtol=1e-4, atol=1e-4)


def test_evonorm_b0_train_and_eval_formula():
    layer = create_norm_layer("evonorm_b0", 4, layout="nchw", momentum=0.3)
    _perturb(layer)
    x = torch.randn(5, 4, 3, 3) * 2
    view = lambda t: t.view(1, -1, 1, 1)
    batch_var = x.var((0, 2, 3), unbiased=False)
    inst_std = torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    expected = x / torch.maximum(torch.sqrt(view(batch_var) + 1e-5), view(layer.v) * x + inst_std) * view(layer.weight) + view(layer.bias)
    torch.testing.assert_close(layer(x), expected)
    running = 0.7 + 0.3 * batch_var
    torch.testing.assert_close(layer.running_var, running)
    layer.eval()
    expected = x / torch.maximum(torch.sqrt(view(running) + 1e-5), view(layer.v) * x + inst_std) * view(layer.weight) + view(layer.bias)
    torch.testing.assert_close(layer(x), expected)
    with pytest.raises(ValueError, match="layout"):
        create_norm_layer("evonorm_b0", 4, layout="nc")


def test_evonorm_s0_formula_both_layouts():
    layer = create_norm_layer("evonorm_s0", 8, layout="nchw", num_groups=2)
    _perturb(layer)
    x = torch.randn(3, 8, 2, 2)
    view = lambda t: t.view(1, -1, 1, 1)
    g = x.view(3, 2, 4, 2, 2)
    std = torch.sqrt(g.var((2, 3, 4), unbiased=False, keepdim=True) + 1e-5).expand_as(g).reshape(x.shape)
    expected = x * torch.sigmoid(view(layer.v) * x) / std * view(layer.weight) + view(layer.bias)
    torch.testing.assert_close(layer(x), expected)
    flat = create_norm_layer("evonorm_s0", 6)
    z = torch.randn(4, 6)
    torch.testing.assert_close(flat(z), z * torch.sigmoid(z) / torch.sqrt(z.var(1, unbiased=False, keepdim=True) + 1e-5))


def test_powernorm_warmup_then_running_quadratic_mean_with_approximate_backward():
    layer = create_norm_layer("powernorm", 3, warmup_iters=1, alpha_fwd=0.9, alpha_bkw=0.8)
    x1 = torch.randn(6, 3) + 1
    y1 = layer(x1)  # warmup: batch quadratic mean
    q1 = x1.square().mean(0)
    torch.testing.assert_close(y1, x1 / torch.sqrt(q1 + 1e-5))
    phi1 = 0.9 + 0.1 * q1
    torch.testing.assert_close(layer.running_phi, phi1)
    # Step 2: normalize by the previous running quadratic mean, approximate backward.
    x2 = (torch.randn(6, 3) * 2).requires_grad_(True)
    y2 = layer(x2)
    z = x2.detach() / torch.sqrt(phi1 + 1e-5)
    torch.testing.assert_close(y2, z)
    g = torch.randn(6, 3)
    y2.backward(g)
    x_tilde = g - 0.0 * z  # nu starts at 0
    torch.testing.assert_close(x2.grad, x_tilde / torch.sqrt(phi1 + 1e-5))
    nu = 0.0 * (1 - 0.2 * z.square().mean(0)) + 0.2 * (x_tilde * z).mean(0)
    torch.testing.assert_close(layer.running_grad_nu, nu)
    torch.testing.assert_close(layer.running_phi, 0.9 * phi1 + 0.1 * x2.detach().square().mean(0))
    # Step 3 uses the tracked nu in the backward.
    x3 = torch.randn(6, 3).requires_grad_(True)
    phi2 = layer.running_phi.clone()
    y3 = layer(x3)
    y3.backward(g)
    z3 = x3.detach() / torch.sqrt(phi2 + 1e-5)
    torch.testing.assert_close(x3.grad, (g - nu * z3) / torch.sqrt(phi2 + 1e-5))
    layer.eval()
    torch.testing.assert_close(layer(x1), x1 / torch.sqrt(layer.running_phi + 1e-5))


def test_unified_norm_geometric_mean_window_after_warmup():
    layer = create_norm_layer("unified", 2, layout="nchw", window_size=3, warmup_iters=0, momentum=0.5)
    xs = [torch.randn(4, 2, 2, 2) * (i + 1) for i in range(5)]
    x2 = [x.square().mean((0, 2, 3)) for x in xs]
    running = torch.ones(2)
    for step, x in enumerate(xs, start=1):
        y = layer(x)
        if step <= 3:
            var = x2[step - 1]
        else:
            var = torch.exp(torch.log(torch.stack(x2[step - 3:step])).mean(0))
        torch.testing.assert_close(y, x / torch.sqrt(var.view(1, 2, 1, 1) + 1e-5), rtol=1e-5, atol=1e-6)
        running = 0.5 * running + 0.5 * var
    torch.testing.assert_close(layer.running_var, running)
    layer.eval()
    torch.testing.assert_close(layer(xs[0]), xs[0] / torch.sqrt(running.view(1, 2, 1, 1) + 1e-5))


def test_unified_norm_backward_subtracts_the_tracked_gradient_statistic():
    layer = create_norm_layer("unified", 3, warmup_iters=10, momentum=0.5)
    x = torch.randn(5, 3).requires_grad_(True)
    y = layer(x)
    g = torch.randn(5, 3)
    y.backward(g)
    z = x.detach() / torch.sqrt(x.detach().square().mean(0) + 1e-5)
    psi = 0.5 * (g * z).mean(0)  # EMA from 0 of this step's statistic
    torch.testing.assert_close(x.grad, (g - psi * z) / torch.sqrt(x.detach().square().mean(0) + 1e-5))


def test_unified_norm_outlier_filtration_skips_smoothing_for_a_spike():
    layer = create_norm_layer("unified", 2, window_size=3, warmup_iters=0, outlier_filtration=True)
    # The reference threshold is the variance of every entry of sqrt(window), across
    # channels too: channels of different scales make ordinary batches pass.
    scale = torch.tensor([1.0, 3.0])
    for _ in range(4):
        layer(torch.randn(64, 2) * scale)
    assert layer.num_outliers.item() == 0
    spike = torch.randn(64, 2) * scale * 100
    y = layer(spike)
    assert layer.num_outliers.item() == 1
    torch.testing.assert_close(y, spike / torch.sqrt(spike.square().mean(0) + 1e-5))
