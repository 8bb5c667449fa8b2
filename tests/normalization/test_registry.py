"""The norm registry: names, lookup, construction and registration rules."""
import functools

import pytest
import torch.nn as nn

from normrl.normalization import create_norm_layer, get_norm_layer, list_norms, register_norm
from normrl.normalization import registry
from normrl.normalization.layers.layernorm import LayerNorm

REQUIRED = {"layernorm", "rmsnorm", "crmsnorm", "dyt", "batchnorm", "groupnorm", "none", "nap"}


def test_list_norms_is_sorted_lowercase_and_has_the_builtin_layers():
    names = list_norms()
    assert names == sorted(names)
    assert all(n == n.lower() for n in names)
    assert REQUIRED <= set(names)


def test_unknown_name_raises_listing_every_valid_name():
    with pytest.raises(ValueError) as info:
        get_norm_layer("no-such-norm")
    for name in list_norms():
        assert name in str(info.value)


def test_get_norm_layer_accepts_name_class_partial_and_none():
    assert get_norm_layer("layernorm") is LayerNorm
    assert get_norm_layer("LayerNorm") is LayerNorm  # case-insensitive
    assert get_norm_layer(LayerNorm) is LayerNorm
    part = functools.partial(LayerNorm, eps=1e-3)
    assert get_norm_layer(part) is part
    assert get_norm_layer(None) is get_norm_layer("none")
    with pytest.raises(TypeError):
        get_norm_layer(3)


def test_create_norm_layer_takes_the_feature_count_as_only_positional_argument():
    layer = create_norm_layer("groupnorm", 12, num_groups=3, eps=1e-3)
    assert layer.num_features == 12 and layer.num_groups == 3 and layer.eps == 1e-3
    assert tuple(layer.weight.shape) == (12,)
    with pytest.raises(TypeError):
        LayerNorm(8, "nchw")  # layout is keyword-only
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_features"):
            create_norm_layer("layernorm", bad)
    with pytest.raises(ValueError, match="layout"):
        create_norm_layer("layernorm", 8, layout="nhwc")


def test_every_registered_class_declares_layouts_and_batch_dependence():
    for entry in registry.norm_entries():
        assert set(entry.cls.layouts) <= set(registry.LAYOUTS), entry.name
        assert isinstance(entry.cls.batch_dependent, bool), entry.name
        assert entry.description, entry.name
    assert get_norm_layer("batchnorm").batch_dependent
    assert not get_norm_layer("layernorm").batch_dependent
    assert get_norm_layer("nap").nap is True and issubclass(get_norm_layer("nap"), LayerNorm)


def test_register_norm_rejects_duplicates_and_uppercase():
    with pytest.raises(ValueError, match="lowercase"):
        register_norm("MyNorm", description="x")
    with pytest.raises(ValueError, match="lowercase"):
        register_norm("", description="x")

    class Other(nn.Identity):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_norm("layernorm", description="duplicate")(Other)
    assert get_norm_layer("layernorm") is LayerNorm


def test_register_norm_adds_a_new_name():
    class Scaled(nn.Module):
        layouts = ("nc",)
        batch_dependent = False

        def __init__(self, num_features, *, layout="nc"):
            super().__init__()

    try:
        register_norm("test-only-scaled", description="test layer")(Scaled)
        assert "test-only-scaled" in list_norms()
        assert Scaled.norm_name == "test-only-scaled"
        assert isinstance(create_norm_layer("test-only-scaled", 4), Scaled)
    finally:
        registry._REGISTRY.pop("test-only-scaled", None)
    assert "test-only-scaled" not in list_norms()
