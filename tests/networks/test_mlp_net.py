"""MLP: block structure, NaP form, SELU self-normalizing variant, argument checks."""
import functools

import pytest
import torch
import torch.nn as nn

from normrl.networks import MLP
from normrl.normalization import NaPProjector, apply_nap, create_norm_layer
from normrl.normalization.layers.layernorm import LayerNorm
from normrl.normalization.layers.nap_layernorm import NaPLayerNorm


def _kinds(model):
    return [type(m).__name__ for m in model.modules() if m is not model]


def test_hidden_blocks_are_linear_norm_activation_and_output_has_no_norm():
    model = MLP(5, 3, hidden=(16, 8), norm="layernorm", activation="tanh")
    assert _kinds(model) == ["Linear", "LayerNorm", "Tanh", "Linear", "LayerNorm", "Tanh", "Linear"]
    assert [m.num_features for m in model if isinstance(m, LayerNorm)] == [16, 8]
    assert model(torch.randn(4, 5)).shape == (4, 3)
    assert model.out_features == 3


def test_without_norm_the_chain_has_no_norm_module_and_apply_nap_converts_it():
    model = MLP(5, 3, hidden=(16, 8))
    assert _kinds(model) == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    apply_nap(model)
    assert _kinds(model) == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "ReLU", "Linear"]


def test_nap_mlp_has_no_hidden_bias_keeps_output_bias_and_projects_hidden_layers():
    model = MLP(5, 3, hidden=(16, 16, 16), norm="nap")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [l.bias is None for l in linears] == [True, True, True, False]
    assert model.nap is True
    projector = NaPProjector(model)
    assert projector.layer_names == ["0", "3", "6"]  # each hidden Linear is followed by its norm
    # A partial of the NaP class is recognised too.
    part = MLP(5, 3, hidden=(4,), norm=functools.partial(NaPLayerNorm, eps=1e-3))
    assert part[0].bias is None and part[1].eps == 1e-3
    # Non-NaP norms keep the bias.
    assert MLP(5, 3, hidden=(4,), norm="layernorm")[0].bias is not None


def test_features_only_when_out_dim_is_none():
    model = MLP(5, None, hidden=(16, 12), norm="rmsnorm")
    assert model.out_features == 12
    assert isinstance(model[-1], nn.ReLU)
    assert model(torch.randn(2, 5)).shape == (2, 12)
    assert MLP(5, None, hidden=()).out_features == 5


def test_norm_kwargs_and_dropout():
    model = MLP(5, 2, hidden=(8,), norm="groupnorm", dropout=0.2, norm_kwargs={"num_groups": 2})
    assert model[1].num_groups == 2
    assert _kinds(model) == ["Linear", "GroupNorm", "ReLU", "Dropout", "Linear"]
    assert model[3].p == 0.2


def test_selu_mlp_uses_lecun_normal_init_and_alpha_dropout():
    model = MLP(400, 10, hidden=(400, 400), activation="selu", dropout=0.1)
    assert _kinds(model) == ["Linear", "SELU", "AlphaDropout", "Linear", "SELU", "AlphaDropout", "Linear"]
    for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
        assert abs(layer.weight.std().item() - (1 / 400) ** 0.5) < 0.002
        assert torch.all(layer.bias == 0)


def test_selu_mlp_keeps_unit_variance_over_many_layers():
    depth, width = 16, 256
    model = MLP(width, None, hidden=(width,) * depth, activation="selu")
    x = torch.randn(2048, width)
    with torch.no_grad():
        h = model(x)
    assert abs(h.mean().item()) < 0.1
    assert 0.85 < h.var().item() < 1.15
    # Contrast: the same depth with ReLU and default init collapses the variance.
    relu = MLP(width, None, hidden=(width,) * depth, activation="relu")
    with torch.no_grad():
        assert relu(x).var().item() < 0.01


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"activation": "swish"}, "valid: crelu, elu, gelu, leaky_relu, relu, selu, silu, tanh"),
        ({"hidden": (8, -1)}, "hidden width"),
        ({"hidden": (0,)}, "hidden width"),
        ({"activation": "selu", "norm": "layernorm"}, "self-normalizing"),
        ({"dropout": 1.0}, "dropout"),
        ({"norm": "no-such-norm"}, "valid names"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(4, 2, **kwargs)


def test_invalid_dims_raise_value_error():
    with pytest.raises(ValueError, match="in_dim"):
        MLP(0, 2)
    with pytest.raises(ValueError, match="out_dim"):
        MLP(3, -2)


def test_norm_class_is_accepted():
    model = MLP(3, 2, hidden=(6,), norm=LayerNorm)
    assert isinstance(model[1], LayerNorm)
    assert type(create_norm_layer("layernorm", 6)) is type(model[1])


def test_crelu_mlp_doubles_the_next_layers_fan_in_and_the_width_rule_matches_parameters():
    from normrl.plasticity import CReLU, crelu_hidden_widths

    relu = MLP(4, 2, hidden=(64, 64))
    wide = MLP(4, 2, hidden=(64, 64), activation="crelu")
    assert [m.in_features for m in wide if isinstance(m, nn.Linear)] == [4, 128, 128]
    assert sum(isinstance(m, CReLU) for m in wide) == 2 and wide(torch.randn(3, 4)).shape == (3, 2)
    widths = crelu_hidden_widths((64, 64), "equal_params", in_dim=4, out_dim=2)
    same = MLP(4, 2, hidden=widths, activation="crelu")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # ReLU: 4·64+64 + 64·64+64 + 64·2+2 = 4,610; equal width: 4·64+64 + 128·64+64 + 128·2+2 = 8,834;
    # equal parameters (46, 46): 4·46+46 + 92·46+46 + 92·2+2 = 4,694, the closest count
    assert (n(relu), n(wide), n(same), widths) == (4610, 8834, 4694, (46, 46))
