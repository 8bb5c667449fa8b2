"""Every registered norm builds into every network (parametrized from the registry)
and the result trains: outputs have the right shape and every parameter gets a gradient."""
import pytest
import torch

from normrl.networks import MLP, MinAtarCNN, NatureCNN, ResidualMLP
from normrl.normalization import get_norm_layer, list_norms

BATCH = 8  # >= 8 for batch-dependent norms


def _supports(name, layout):
    return layout in getattr(get_norm_layer(name), "layouts", ("nc",))


def _check_trains(model, x, out_dim):
    y = model(x)
    assert y.shape == (x.shape[0], out_dim) and torch.isfinite(y).all()
    y.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname


@pytest.mark.parametrize("name", list_norms())
def test_mlp_and_residual_mlp_with_every_norm(name):
    if not _supports(name, "nc"):
        pytest.skip(f"{name} has no 'nc' layout")
    _check_trains(MLP(6, 3, hidden=(16, 16), norm=name), torch.randn(BATCH, 6), 3)
    _check_trains(ResidualMLP(6, 3, 16, 2, norm=name, placement="peri"), torch.randn(BATCH, 6), 3)


@pytest.mark.parametrize("name", list_norms())
def test_cnns_with_every_norm(name):
    if not (_supports(name, "nc") and _supports(name, "nchw")):
        pytest.skip(f"{name} lacks a layout the CNNs need")
    _check_trains(MinAtarCNN(4, 5, norm=name), torch.rand(BATCH, 4, 10, 10) > 0.5, 5)
    _check_trains(NatureCNN(2, 5, norm=name), torch.randint(0, 256, (BATCH, 2, 84, 84), dtype=torch.uint8), 5)


@pytest.mark.parametrize("name", list_norms())
def test_nature_cnn_channels_last_equals_contiguous_with_every_norm(name):
    """NatureCNN(channels_last=True) (what the agents build: faster CPU convs) gives the
    same outputs and gradients as the contiguous layout with every norm."""
    if not (_supports(name, "nc") and _supports(name, "nchw")):
        pytest.skip(f"{name} lacks a layout the CNNs need")
    torch.manual_seed(0)
    fast = NatureCNN(2, 5, norm=name, channels_last=True)
    plain = NatureCNN(2, 5, norm=name)
    plain.load_state_dict(fast.state_dict())
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) and not c.weight.is_contiguous() for c in convs)
    x = torch.randint(0, 256, (BATCH, 2, 84, 84), dtype=torch.uint8)
    y_fast, y_plain = fast(x), plain(x)
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-4, atol=1e-5)
    y_fast.square().mean().backward()
    y_plain.square().mean().backward()
    grads = dict(plain.named_parameters())
    for pname, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, grads[pname].grad, rtol=1e-3, atol=1e-6, msg=pname)
