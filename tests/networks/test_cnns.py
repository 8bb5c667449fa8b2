"""NatureCNN and MinAtarCNN: shapes, parameter counts, input scaling, norms and NaP."""
import pytest
import torch
import torch.nn as nn

from normrl.networks import MinAtarCNN, NatureCNN
from normrl.normalization import NaPProjector


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_nature_cnn_output_shape_for_uint8_frames():
    model = NatureCNN(4, 6)
    x = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    assert model(x).shape == (3, 6)


def test_nature_cnn_scales_uint8_by_1_over_255_and_leaves_float_alone():
    model = NatureCNN(4, 6, norm="layernorm")
    x = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.float() / 255.0))


def test_nature_cnn_parameter_count_matches_mnih_2015():
    conv = (32 * 4 * 64 + 32) + (64 * 32 * 16 + 64) + (64 * 64 * 9 + 64)
    fc = 64 * 7 * 7 * 512 + 512
    assert _n_params(NatureCNN(4, 18)) == conv + fc + 512 * 18 + 18
    torso = NatureCNN(4, None)
    assert _n_params(torso) == conv + fc
    assert torso.features_dim == 512 and torso.out_features == 512
    assert torso(torch.zeros(2, 4, 84, 84)).shape == (2, 512)


def test_nature_cnn_conv_norms_are_channels_first():
    model = NatureCNN(4, 6, norm="layernorm")
    norms = [m for m in model.modules() if getattr(m, "layout", None) is not None]
    assert [(n.num_features, n.layout) for n in norms] == [(32, "nchw"), (64, "nchw"), (64, "nchw"), (512, "nc")]
    bn = NatureCNN(4, 6, norm="batchnorm")
    assert sum(1 for m in bn.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)) == 4
    assert bn(torch.randn(8, 4, 84, 84)).shape == (8, 6)


def test_nature_cnn_nap_form():
    model = NatureCNN(4, 6, norm="nap")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [l.bias is None for l in layers] == [True, True, True, True, False]
    assert len(NaPProjector(model).layer_names) == 4


def test_nature_cnn_other_input_size_and_errors():
    assert NatureCNN(1, 2, input_size=(64, 64))(torch.zeros(1, 1, 64, 64)).shape == (1, 2)
    with pytest.raises(ValueError, match="too small"):
        NatureCNN(1, 2, input_size=(20, 20))
    with pytest.raises(ValueError, match="in_channels"):
        NatureCNN(0, 2)
    with pytest.raises(ValueError, match="activation"):
        NatureCNN(4, 2, activation="nope")


@pytest.mark.parametrize("channels,actions", [(4, 6), (10, 3)])
def test_minatar_cnn_parameter_count_matches_young_and_tian_2019(channels, actions):
    model = MinAtarCNN(channels, actions)
    expected = (16 * channels * 9 + 16) + (16 * 8 * 8 * 128 + 128) + (128 * actions + actions)
    assert _n_params(model) == expected


def test_minatar_cnn_shapes_bool_input_and_structure():
    model = MinAtarCNN(4, 6)
    x = torch.rand(5, 4, 10, 10) > 0.5
    assert model(x).shape == (5, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.float()))
    kinds = [type(m).__name__ for m in model.modules() if m is not model]
    assert kinds == ["InputCast", "Conv2d", "ReLU", "Flatten", "Linear", "ReLU", "Linear"]
    conv = model[1]
    assert (conv.out_channels, conv.kernel_size, conv.stride) == (16, (3, 3), (1, 1))
    torso = MinAtarCNN(4, None)
    assert torso.features_dim == 128 and torso(x).shape == (5, 128)


def test_minatar_cnn_with_norm_and_nap():
    ln = MinAtarCNN(4, 6, norm="layernorm")
    # LayerNorm adds 2 * (16 + 128) affine parameters.
    assert _n_params(ln) == _n_params(MinAtarCNN(4, 6)) + 2 * (16 + 128)
    nap = MinAtarCNN(4, 6, norm="nap")
    layers = [m for m in nap.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [l.bias is None for l in layers] == [True, True, False]
    assert NaPProjector(nap).layer_names == ["1", "5"]
