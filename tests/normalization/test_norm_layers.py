"""Every registered norm (parametrized from the registry at collection time, so norms
added later are covered), then the closed forms of the LayerNorm family."""
import io
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.normalization import create_norm_layer, get_norm_layer, list_norms

C = 8  # features; divisible by groupnorm's default group count
N = 16  # batch size; >= 8 for batch-dependent layers

CASES = [(name, layout) for name in list_norms() for layout in getattr(get_norm_layer(name), "layouts", ("nc",))]
IDS = [f"{n}-{l}" for n, l in CASES]


def _input(layout, shift=0.0, n=N, dtype=torch.float32):
    shape = (n, C) if layout == "nc" else (n, C, 3, 3)
    return (torch.randn(shape) * 2.0 + shift).to(dtype)


def _perturb_parameters(layer):
    """Move every parameter off its initial value so round trips test real state."""
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))


def _batch_dependent(name):
    return bool(getattr(get_norm_layer(name), "batch_dependent", False))


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_output_shape_and_dtype(name, layout):
    layer = create_norm_layer(name, C, layout=layout)
    inputs = [_input(layout)] + ([torch.randn(N, 3, C)] if layout == "nc" else [])  # (N, C) and (N, ..., C)
    for x in inputs:
        y = layer(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_gradients_reach_input_and_every_parameter(name, layout):
    layer = create_norm_layer(name, C, layout=layout)
    _perturb_parameters(layer)
    x = _input(layout).requires_grad_(True)
    y = layer(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in layer.named_parameters():
        assert p.grad is not None, f"no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_train_and_eval_behaviour(name, layout):
    layer = create_norm_layer(name, C, layout=layout)
    _perturb_parameters(layer)
    x = _input(layout, shift=3.0)
    layer.train()
    y_train = layer(x)
    layer.eval()
    with torch.no_grad():
        y_eval = layer(x)
        y_eval_again = layer(x)
    torch.testing.assert_close(y_eval, y_eval_again)  # eval changes no state
    if _batch_dependent(name):
        if getattr(type(layer), "shift_invariant", False):
            # The layer removes every per-sample shift before its batch statistics
            # (Continual Normalization: GroupNorm first), so a shifted batch cannot
            # separate train from eval. Move the running means instead: eval must
            # follow them, training mode must not.
            with torch.no_grad():
                for bname, buf in layer.named_buffers():
                    if bname.split(".")[-1] == "running_mean":
                        buf.add_(1.0)
                y_eval = layer(x)  # y_train (training mode) never reads running stats
        # Eval normalizes with running statistics (one EMA step from the initial ones),
        # far from the statistics of a batch shifted by 3.
        assert (y_eval - y_train).abs().max() > 0.1
        # ... and each sample's output no longer depends on the rest of the batch.
        with torch.no_grad():
            alone = layer(x[:1])
        torch.testing.assert_close(alone, y_eval[:1], rtol=1e-5, atol=1e-5)
        buffers = [b for n, b in layer.named_buffers() if n.split(".")[-1].startswith("running_")]
        assert buffers, "batch-dependent layers name their statistic buffers running_*"
    else:
        torch.testing.assert_close(y_eval, y_train.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_state_dict_round_trip_gives_identical_outputs(name, layout):
    layer = create_norm_layer(name, C, layout=layout)
    _perturb_parameters(layer)
    layer.train()
    for _ in range(3):
        layer(_input(layout, shift=1.0))  # moves running statistics, if any
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = create_norm_layer(name, C, layout=layout)
    fresh.load_state_dict(torch.load(buf))
    layer.eval()
    fresh.eval()
    x = _input(layout, shift=-1.0)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), layer(x), rtol=0, atol=0)


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_bfloat16_forward_matches_float32(name, layout):
    if not getattr(get_norm_layer(name), "supports_bfloat16", True):
        pytest.skip(f"{name} declares supports_bfloat16 = False")
    layer = create_norm_layer(name, C, layout=layout)
    _perturb_parameters(layer)
    layer.eval()
    x = _input(layout)
    with torch.no_grad():
        ref = layer(x)
        y = layer.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_task_hooks_are_callable_with_an_int(name, layout):
    layer = create_norm_layer(name, C, layout=layout)
    for hook in ("on_task_start", "on_task_end"):
        if hasattr(layer, hook):
            getattr(layer, hook)(0)
            getattr(layer, hook)(1)
    y = layer(_input(layout))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", list_norms())
def test_unsupported_layout_is_rejected_by_the_class_itself(name):
    cls = get_norm_layer(name)
    for layout in ("nhwc", *({"nc", "nchw"} - set(cls.layouts))):
        with pytest.raises(ValueError, match="layout"):
            cls(C, layout=layout)


# ----------------------------------------------------------------------------- closed forms


def test_layernorm_matches_torch_and_normalizes_channels_per_position():
    x = torch.randn(5, 7, C)
    layer = create_norm_layer("layernorm", C)
    _perturb_parameters(layer)
    ref = F.layer_norm(x, (C,), layer.weight, layer.bias, 1e-5)
    torch.testing.assert_close(layer(x), ref)
    img = torch.randn(4, C, 3, 5)
    conv = create_norm_layer("layernorm", C, layout="nchw", elementwise_affine=False)
    y = conv(img)
    mean = img.mean(dim=1, keepdim=True)
    var = img.var(dim=1, unbiased=False, keepdim=True)
    torch.testing.assert_close(y, (img - mean) / torch.sqrt(var + 1e-5))


def test_nap_is_a_flagged_layernorm_with_identical_output():
    nap = create_norm_layer("nap", C)
    ln = create_norm_layer("layernorm", C)
    x = torch.randn(6, C)
    assert type(nap).nap is True and not getattr(type(ln), "nap", False)
    torch.testing.assert_close(nap(x), ln(x), rtol=0, atol=0)


def test_rmsnorm_equals_its_formula():
    layer = create_norm_layer("rmsnorm", C, eps=1e-6)
    _perturb_parameters(layer)
    x = torch.randn(10, C) * 3 + 1
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * layer.weight
    torch.testing.assert_close(layer(x), expected)
    assert layer.bias is None  # the paper's RMSNorm has no offset
    img = torch.randn(2, C, 4, 4)
    conv = create_norm_layer("rmsnorm", C, layout="nchw")
    expected = img / torch.sqrt(img.pow(2).mean(1, keepdim=True) + 1e-6)
    torch.testing.assert_close(conv(img), expected)


def test_crmsnorm_equals_layernorm_on_zero_mean_input():
    d = C + 1
    z = torch.randn(32, d) * 4
    z = z - z.mean(-1, keepdim=True)  # zero-mean main stream
    crms = create_norm_layer("crmsnorm", d - 1)  # stores d-1 coordinates
    ln = create_norm_layer("layernorm", d)
    with torch.no_grad():
        g = torch.randn(d)
        b = torch.randn(d)
        ln.weight.copy_(g)
        ln.bias.copy_(b)
        crms.weight.copy_(g[:-1])
        crms.bias.copy_(b[:-1])
    x = crms.compress(z)
    torch.testing.assert_close(crms(x), ln(z)[:, :-1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(crms.decompress(x), z, rtol=0, atol=1e-5)
    # Without affine the dropped coordinate is minus the sum of the others.
    plain = create_norm_layer("crmsnorm", d - 1, elementwise_affine=False)
    full = F.layer_norm(z, (d,), eps=1e-5)
    torch.testing.assert_close(plain.decompress(plain(x)), full, rtol=1e-5, atol=1e-5)


def test_crmsnorm_uses_the_compressed_mean_square_not_the_rms_of_the_stored_part():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    layer = create_norm_layer("crmsnorm", 3, elementwise_affine=False, eps=0.0)
    rms = math.sqrt((1 + 4 + 9 + 36) / 4)  # (sum x^2 + (sum x)^2) / d, d = 4
    torch.testing.assert_close(layer(x), x / rms)


def test_dyt_equals_its_formula_with_alpha_initialized_to_half():
    layer = create_norm_layer("dyt", C)
    assert layer.alpha.item() == 0.5 and layer.alpha.numel() == 1
    torch.testing.assert_close(layer.weight, torch.ones(C))
    torch.testing.assert_close(layer.bias, torch.zeros(C))
    _perturb_parameters(layer)
    x = torch.randn(4, 3, C) * 3
    torch.testing.assert_close(layer(x), layer.weight * torch.tanh(layer.alpha * x) + layer.bias)
    img = torch.randn(2, C, 3, 3)
    conv = create_norm_layer("dyt", C, layout="nchw", alpha_init=1.5)
    _perturb_parameters(conv)
    expected = conv.weight.view(-1, 1, 1) * torch.tanh(conv.alpha * img) + conv.bias.view(-1, 1, 1)
    torch.testing.assert_close(conv(img), expected)


def test_batchnorm_matches_torch_for_both_layouts():
    bn = create_norm_layer("batchnorm", C)
    ref = nn.BatchNorm1d(C)
    x = torch.randn(N, 3, C) + 2
    y = bn(x)
    torch.testing.assert_close(y, ref(x.reshape(-1, C)).reshape(x.shape))
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    bn2 = create_norm_layer("batchnorm", C, layout="nchw", momentum=0.5)
    ref2 = nn.BatchNorm2d(C, momentum=0.5)
    img = torch.randn(N, C, 3, 3)
    torch.testing.assert_close(bn2(img), ref2(img))
    torch.testing.assert_close(bn2.running_var, ref2.running_var)
    with pytest.raises(ValueError, match=r"\(N, 8, H, W\) for layout=.nchw., got \(16, 8\)"):
        bn2(torch.randn(N, C))


def test_groupnorm_default_groups_and_statistics():
    assert create_norm_layer("groupnorm", 64).num_groups == 32
    assert create_norm_layer("groupnorm", 48).num_groups == 24
    assert create_norm_layer("groupnorm", 7).num_groups == 7
    with pytest.raises(ValueError, match="divisor"):
        create_norm_layer("groupnorm", 10, num_groups=4)
    layer = create_norm_layer("groupnorm", C, num_groups=2, affine=False)
    x = torch.randn(3, 5, C)
    groups = x.reshape(3, 5, 2, C // 2)
    expected = (groups - groups.mean(-1, keepdim=True)) / torch.sqrt(groups.var(-1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(layer(x), expected.reshape(x.shape))
    conv = create_norm_layer("groupnorm", C, layout="nchw", num_groups=4)
    img = torch.randn(2, C, 3, 3)
    torch.testing.assert_close(conv(img), F.group_norm(img, 4, conv.weight, conv.bias, 1e-5))


def test_none_is_the_identity():
    layer = create_norm_layer("none", C)
    x = torch.randn(3, C)
    assert layer(x) is x and not list(layer.parameters())
