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
