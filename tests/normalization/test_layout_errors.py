"""Every registered norm checks its input against its layout and feature count before
touching it (``check_input`` in normrl/normalization/layers/_layout.py) and raises one
ValueError that names the layer, the expected and the received shape, and the
``layout=`` that would accept the input. Parametrized from the registry, so norms
added later are covered. ``none`` (the identity) is the one layer that does not check."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from normrl.normalization import create_norm_layer, get_norm_layer, list_norms
from normrl.normalization.layers._layout import check_input

C = 4
N = 16
EXPECTED = {"nc": "(N, 4) or (N, ..., 4)", "nchw": "(N, 4, H, W)"}
OTHER = {"nc": "nchw", "nchw": "nc"}

CHECKED = [name for name in list_norms() if name != "none"]
CASES = [(name, layout) for name in CHECKED for layout in get_norm_layer(name).layouts]
IDS = [f"{n}-{l}" for n, l in CASES]


def _base_message(name, layout, shape):
    cls = get_norm_layer(name).__name__
    return f"norm {name!r} ({cls}) expects input of shape {EXPECTED[layout]} for layout={layout!r}, got {shape}"


def _state(layer):
    return {k: v.clone() for k, v in layer.state_dict().items()}


def test_the_issue_example_names_layer_shapes_and_fix():
    """create_norm_layer("adab2n", 4) fed an NCHW batch used to reshape it silently to
    (16, 9, 4) and normalize the wrong axis."""
    layer = create_norm_layer("adab2n", 4)
    with pytest.raises(ValueError) as info:
        layer(torch.randn(16, 4, 3, 3))
    assert str(info.value) == (
        "norm 'adab2n' (AdaB2N) expects input of shape (N, 4) or (N, ..., 4) for layout='nc', got (16, 4, 3, 3); "
        "this looks like a channels-first image batch (N, C, H, W) with C = 4: build the layer with layout='nchw', "
        "e.g. create_norm_layer('adab2n', 4, layout='nchw')"
    )
    layer = create_norm_layer("layernorm", 4, layout="nchw")
    with pytest.raises(ValueError) as info:
        layer(torch.randn(16, 4))
    assert str(info.value) == (
        "norm 'layernorm' (LayerNorm) expects input of shape (N, 4, H, W) for layout='nchw', got (16, 4); "
        "this looks like features-last input (N, ..., C) with C = 4: build the layer with layout='nc', "
        "e.g. create_norm_layer('layernorm', 4, layout='nc')"
    )


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_input_in_the_other_layout_is_rejected_with_the_fix(name, layout, training):
    layer = create_norm_layer(name, C, layout=layout).train(training)
    before = _state(layer)
    x = torch.randn(N, C, 3, 3) if layout == "nc" else torch.randn(N, C)
    with pytest.raises(ValueError) as info:
        layer(x)
    message = str(info.value)
    assert message.startswith(_base_message(name, layout, tuple(x.shape)) + "; this looks like")
    other = OTHER[layout]
    if other in get_norm_layer(name).layouts:
        assert message.endswith(f"build the layer with layout={other!r}, e.g. create_norm_layer({name!r}, {C}, layout={other!r})")
    else:  # evonorm_b0 has no "nc" layout
        assert message.endswith(f"but {name!r} has no layout={other!r}: it takes only channels-first images (N, C, H, W)")
    # Rejected before anything ran: no running statistic or step counter moved.
    after = layer.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_wrong_feature_count_or_rank_is_rejected_without_a_layout_fix(name, layout):
    layer = create_norm_layer(name, C, layout=layout)
    if layout == "nc":
        bad = [(N, C + 1), (N, 3, C - 1), (C,)]
    else:
        bad = [(N, C + 1, 3, 3), (N, C - 1, 3, 3), (N, C, 3), (N, C, 3, 3, 3)]
    for shape in bad:
        with pytest.raises(ValueError) as info:
            layer(torch.randn(shape))
        assert str(info.value) == _base_message(name, layout, shape)


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_other_near_misses_get_their_own_hint(name, layout):
    layer = create_norm_layer(name, C, layout=layout)
    if layout == "nc":  # (N, C, L): channels first, but not an image
        shape, hint = (N, C, 3), "; this looks like channels-first input (N, C, L) with C = 4: move the channel axis last (x.movedim(1, -1))"
    else:  # NHWC image: the channels are last
        shape, hint = (N, 3, 3, C), "; this looks like features-last input (N, ..., C) with C = 4"
    with pytest.raises(ValueError) as info:
        layer(torch.randn(shape))
    assert str(info.value).startswith(_base_message(name, layout, shape) + hint)


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_inputs_in_the_right_layout_pass_in_train_and_eval(name, layout):
    layer = create_norm_layer(name, C, layout=layout)
    shapes = [(N, C), (N, 3, C), (N, 2, 3, C)] if layout == "nc" else [(N, C, 3, 3), (N, C, 5, 2)]
    for training in (True, False):
        layer.train(training)
        for shape in shapes:
            x = torch.randn(shape) * 2 + 1
            y = layer(x)
            assert y.shape == x.shape and torch.isfinite(y).all()


def test_nc_input_with_four_axes_is_normalized_over_the_last_one():
    """(N, H, W, C) in layout="nc" is features-last, not mistaken for NCHW: equal to the
    same rows given as (N*H*W, C)."""
    x = torch.randn(N, 2, 3, C) * 3 + 1
    for name in ("layernorm", "batchnorm", "adab2n", "rmsnorm"):
        layer = create_norm_layer(name, C)
        torch.testing.assert_close(layer(x), create_norm_layer(name, C)(x.reshape(-1, C)).reshape(x.shape))


@pytest.mark.parametrize("layout", ["nc", "nchw"])
def test_identity_does_not_check(layout):
    layer = create_norm_layer("none", C, layout=layout)
    for shape in [(N, C, 3, 3), (N, C), (3,), (N, C + 1)]:
        x = torch.randn(shape)
        assert layer(x) is x


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name,layout", CASES, ids=IDS)
def test_the_check_reads_only_the_shape(name, layout):
    """No tensor op reaches the dispatcher (so no kernel and no device sync), and a
    meta tensor, which has no data to read, is checked like a real one."""
    layer = create_norm_layer(name, C, layout=layout)
    good, bad = ((N, C), (N, C, 3, 3)) if layout == "nc" else ((N, C, 3, 3), (N, C))
    good, bad = torch.empty(good, device="meta"), torch.empty(bad, device="meta")
    recorder = _RecordOps()
    with recorder:
        check_input(layer, good)
        with pytest.raises(ValueError):
            check_input(layer, bad)
        torch.empty(1, device="meta").abs()  # the recorder does see ops
    assert recorder.ops == ["aten.empty.memory_format", "aten.abs.default"]


@pytest.mark.parametrize("name,layout", [("layernorm", "nc"), ("batchnorm", "nchw"), ("adab2n", "nc"), ("groupnorm", "nchw")])
def test_torch_compile_traces_the_check_and_still_rejects_wrong_input(name, layout):
    torch._dynamo.reset()
    layer = create_norm_layer(name, C, layout=layout).eval()
    good, bad = ((N, C), (N, C, 3, 3)) if layout == "nc" else ((N, C, 3, 3), (N, C))
    x = torch.randn(good)
    compiled = torch.compile(layer, backend="eager", fullgraph=True, dynamic=True)
    torch.testing.assert_close(compiled(x), layer(x))
    assert compiled(torch.randn(7, *good[1:])).shape == (7, *good[1:])  # another batch size, same graph
    loose = torch.compile(layer, backend="eager", dynamic=True)
    with pytest.raises(ValueError, match=r"for layout='%s', got \(16, " % layout):
        loose(torch.randn(bad))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_of_groupnorm_still_compiles_and_matches_eager():
    """The check is skipped under TorchScript (it cannot compile the message); the
    scripted layer keeps computing the same output."""
    layer = create_norm_layer("groupnorm", C, layout="nchw", num_groups=2)
    scripted = torch.jit.script(layer)
    x = torch.randn(N, C, 3, 3)
    torch.testing.assert_close(scripted(x), layer(x))
