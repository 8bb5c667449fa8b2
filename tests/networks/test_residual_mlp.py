"""ResidualMLP: per-block placements and the formulas of Pre/Post/Mix/Peri-LN and
LayerNorm Scaling."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.networks import ResidualMLP
from normrl.networks.residual_mlp import block_placements

W = 12


def _perturb(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))


def _ln(x, norm):
    return F.layer_norm(x, (W,), norm.weight, norm.bias, 1e-5)


def test_mix_ln_post_blocks_follow_alpha():
    assert ResidualMLP(4, 2, W, 8, placement="mix").placements == ["post"] * 2 + ["pre"] * 6
    assert block_placements("mix", 6, alpha=0.5) == ["post"] * 3 + ["pre"] * 3
    assert block_placements("mix", 7, alpha=0.25) == ["post"] + ["pre"] * 6  # floor(1.75) = 1
    assert block_placements("mix", 3, alpha=0.0) == ["pre"] * 3
    model = ResidualMLP(4, 2, W, 8, placement="mix", alpha=0.25)
    assert [b.placement for b in model.blocks] == model.placements


def test_placement_lists_and_final_norm():
    assert ResidualMLP(4, 2, W, 3, placement="pre").placements == ["pre"] * 3
    post = ResidualMLP(4, 2, W, 3, placement="post")
    assert post.placements == ["post"] * 3 and isinstance(post.final_norm, nn.Identity)
    for placement in ("pre", "mix", "peri", "lns"):
        assert not isinstance(ResidualMLP(4, 2, W, 3, placement=placement).final_norm, nn.Identity)
    assert ResidualMLP(4, 2, W, 3, placement="lns").placements == ["pre"] * 3


def test_pre_and_post_block_formulas():
    pre = ResidualMLP(4, 2, W, 2, placement="pre")
    post = ResidualMLP(4, 2, W, 2, placement="post")
    _perturb(pre)
    _perturb(post)
    x = torch.randn(5, W)
    b = pre.blocks[1]
    expected = x + b.fc2(torch.relu(b.fc1(_ln(x, b.norm))))
    torch.testing.assert_close(b(x), expected)
    b = post.blocks[0]
    expected = _ln(x + b.fc2(torch.relu(b.fc1(x))), b.norm)
    torch.testing.assert_close(b(x), expected)


def test_peri_ln_formula():
    model = ResidualMLP(4, 2, W, 2, placement="peri", activation="gelu")
    _perturb(model)
    x = torch.randn(5, W) * 3
    b = model.blocks[0]
    expected = x + _ln(b.fc2(F.gelu(b.fc1(_ln(x, b.norm_in)))), b.norm_out)
    torch.testing.assert_close(b(x), expected)


def test_layernorm_scaling_multiplies_block_l_norm_output_by_inverse_sqrt_l():
    depth = 5
    lns = ResidualMLP(4, 2, W, depth, placement="lns")
    pre = ResidualMLP(4, 2, W, depth, placement="pre")
    _perturb(lns)
    pre.load_state_dict(lns.state_dict())  # same parameters, unscaled pre-LN blocks
    assert lns.scales == [1 / math.sqrt(l) for l in range(1, depth + 1)]
    x = torch.randn(6, W)
    for l, (b_lns, b_pre) in enumerate(zip(lns.blocks, pre.blocks), start=1):
        scaled_norm = b_pre.norm(x) / math.sqrt(l)
        torch.testing.assert_close(b_lns(x), x + b_pre.residual(scaled_norm))
        if l == 1:
            torch.testing.assert_close(b_lns(x), b_pre(x))
        else:
            assert not torch.allclose(b_lns(x), b_pre(x))
    # Final norm unscaled: identical to pre-LN's.
    torch.testing.assert_close(lns.final_norm(x), pre.final_norm(x))


def test_forward_shapes_and_other_norms():
    model = ResidualMLP(4, 3, W, 4, norm="rmsnorm", placement="peri")
    assert model(torch.randn(7, 4)).shape == (7, 3)
    feats = ResidualMLP(4, None, W, 2)
    assert feats.out_features == W and feats(torch.randn(2, 4)).shape == (2, W)
    # Pre-LN: network output = head(final_norm(stream)).
    x = torch.randn(3, 4)
    h = model.input(x)
    for b in model.blocks:
        h = b(h)
    torch.testing.assert_close(model(x), model.head(model.final_norm(h)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"placement": "sandwich"}, "pre.*post.*mix.*peri.*lns"),
        ({"width": -4}, "width"),
        ({"depth": 0}, "depth"),
        ({"alpha": 1.5}, "alpha"),
        ({"activation": "swish"}, "valid"),
        ({"norm": "unknown"}, "valid names"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, match):
    args = {"in_dim": 4, "out_dim": 2, "width": W, "depth": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        ResidualMLP(**args)
