"""The reduced ResNet-18 of online continual learning: parameter count in closed form,
norm placement, WSConv2d for bcn, NaP selection."""
import pytest
import torch
import torch.nn as nn

from normrl.networks import ResNet18
from normrl.normalization import NaPProjector
from normrl.normalization.layers.adab2n import AdaB2N
from normrl.normalization.ws_conv import WSConv2d


def _expected_params(nf, classes, in_ch=3, norm_params_per_channel=2):
    bn = lambda c: norm_params_per_channel * c  # noqa: E731
    total = in_ch * nf * 9 + bn(nf)
    planes = nf
    for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
        out = nf * mult
        for s in (stride, 1):
            total += planes * out * 9 + bn(out) + out * out * 9 + bn(out)
            if s != 1 or planes != out:
                total += planes * out + bn(out)
            planes = out
    return total + planes * classes + classes


def test_parameter_count_matches_the_closed_form():
    assert sum(p.numel() for p in ResNet18(10).parameters()) == _expected_params(20, 10) == 1_094_750
    assert sum(p.numel() for p in ResNet18(100, nf=8, in_channels=1, norm=None).parameters()) == _expected_params(8, 100, 1, 0)


def test_norm_layers_are_built_channels_first_from_the_registry():
    model = ResNet18(10, norm="adab2n", norm_kwargs={"kappa": 0.4})
    layers = [m for m in model.modules() if isinstance(m, AdaB2N)]
    assert len(layers) == 1 + 8 * 2 + 3  # stem, two per block, three projection shortcuts
    assert all(m.layout == "nchw" and m.kappa == 0.4 for m in layers)
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    assert model.features(torch.randn(2, 3, 32, 32)).shape == (2, 160)
    assert not any(isinstance(m, nn.Conv2d) and m.bias is not None for m in model.modules())


def test_bcn_gets_weight_standardized_convs_unless_disabled():
    convs = lambda m: [c for c in m.modules() if isinstance(c, nn.Conv2d)]  # noqa: E731
    assert all(isinstance(c, WSConv2d) for c in convs(ResNet18(10, norm="bcn")))
    assert not any(isinstance(c, WSConv2d) for c in convs(ResNet18(10, norm="bcn", weight_standardization=False)))
    assert not any(isinstance(c, WSConv2d) for c in convs(ResNet18(10, norm="batchnorm")))


def test_nap_projector_selects_every_conv_and_the_classifier_only_as_output_layer():
    model = ResNet18(10, norm="nap", nf=4)
    projector = NaPProjector(model, output="free")
    assert NaPProjector(model).output_layer_names == ["classifier"]  # the default projects the head
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    initial = [c.weight.norm().item() for c in convs]
    with torch.no_grad():
        for c in convs:
            c.weight.mul_(3.0)
        model.classifier.weight.mul_(3.0)
    head = model.classifier.weight.norm().item()
    projector.project()
    assert [c.weight.norm().item() for c in convs] == pytest.approx(initial, rel=1e-5)  # every conv
    assert model.classifier.weight.norm().item() == pytest.approx(head)  # output="free": head untouched


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_classes"):
        ResNet18(0)
    with pytest.raises(ValueError, match="unknown norm"):
        ResNet18(10, norm="nonorm")
