"""Hidden-unit tracing: which weight layer feeds each hidden activation, which norm sits
between, which layers read it (with the conv -> Flatten -> Linear column blocks), and what
is refused."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn as nn

from normrl.agents.dqn.networks import build_q_network
from normrl.agents.ppo.networks import ActorCritic
from normrl.networks import MLP, MinAtarCNN, NatureCNN
from normrl.networks.residual_mlp import ResidualMLP
from normrl.networks.resnet import ResNet18
from normrl.plasticity.units import OutgoingLayer, fresh_norm, trace_hidden_units


def summary(trace):
    return [(l.name, l.activation_name, l.norm_name, [(o.name, o.block) for o in l.outgoing], l.num_units) for l in trace.layers]


@pytest.mark.parametrize("norm", [None, "layernorm", "nap", "batchnorm", "rmsnorm", "groupnorm", "dyt", "adab2n"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_units_with_every_norm(norm, activation):
    net = MLP(5, 3, hidden=(7, 6), norm=norm, activation=activation)
    trace = trace_hidden_units(net, torch.randn(4, 5))
    if norm is None:
        assert summary(trace) == [("0", "1", None, [("2", 1)], 7), ("2", "3", None, [("4", 1)], 6)]
    else:
        assert summary(trace) == [("0", "2", "1", [("3", 1)], 7), ("3", "5", "4", [("6", 1)], 6)]
    assert trace.skipped == {}
    assert all(l.channel_dim == 1 and l.positions == 1 for l in trace.layers)


def test_mlp_dropout_between_activation_and_next_layer():
    net = MLP(5, 3, hidden=(7, 6), dropout=0.2)
    trace = trace_hidden_units(net, torch.randn(4, 5))
    assert summary(trace) == [("0", "1", None, [("3", 1)], 7), ("3", "4", None, [("6", 1)], 6)]


def test_minatar_conv_channels_map_to_column_blocks_of_the_linear():
    net = MinAtarCNN(4, 3)
    trace = trace_hidden_units(net, torch.rand(2, 4, 10, 10))
    assert summary(trace) == [("1", "2", None, [("4", 64)], 16), ("4", "5", None, [("6", 1)], 128)]
    conv = trace.layers[0]
    assert conv.positions == 64 and conv.channel_dim == 1
    # behaviour of the map: with channel 5's column block zeroed, changing filter 5
    # changes nothing downstream
    x = torch.rand(8, 4, 10, 10)
    cols = conv.outgoing[0].columns(torch.tensor([5]))
    assert cols.tolist() == list(range(5 * 64, 6 * 64))
    with torch.no_grad():
        net[4].weight[:, cols] = 0.0
        before = net(x)
        net[1].weight[5].normal_()
        net[1].bias[5] = 3.0
        assert torch.equal(net(x), before)
        net[1].weight[6].normal_()  # a channel whose block is not zeroed does change it
        assert not torch.equal(net(x), before)


@pytest.mark.parametrize("channels_last", [False, True])
def test_nature_cnn_chain_and_flatten_block(channels_last):
    net = NatureCNN(4, 3, channels_last=channels_last)
    trace = trace_hidden_units(net, torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8))
    assert summary(trace) == [
        ("1", "2", None, [("3", 1)], 32),
        ("3", "4", None, [("5", 1)], 64),
        ("5", "6", None, [("8", 49)], 64),  # the last conv map is 7x7
        ("8", "9", None, [("10", 1)], 512),
    ]


def test_nature_cnn_conv_norms_in_nchw_layout():
    net = NatureCNN(4, 3, norm="groupnorm")
    trace = trace_hidden_units(net, torch.rand(2, 4, 84, 84))
    assert [(l.name, l.norm_name) for l in trace.layers] == [("1", "2"), ("4", "5"), ("7", "8"), ("11", "12")]


def test_actor_critic_separate_and_shared_and_dqn():
    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    x = torch.randn(3, 4)
    sep = trace_hidden_units(ActorCritic(space, 2, hidden=(8, 8)), x)
    assert [(l.name, [o.name for o in l.outgoing]) for l in sep.layers] == [
        ("actor.1.0", ["actor.1.2"]), ("actor.1.2", ["actor.1.4"]), ("critic.1.0", ["critic.1.2"]), ("critic.1.2", ["critic.1.4"])]
    shared = trace_hidden_units(ActorCritic(space, 2, hidden=(8, 8), shared=True), x)
    assert [(l.name, [o.name for o in l.outgoing]) for l in shared.layers] == [("body.1.0", ["body.1.2"]), ("body.1.2", ["body.1.4"])]
    minatar = gym.spaces.Box(0, 1, (4, 10, 10), np.uint8)
    q = trace_hidden_units(build_q_network(minatar, 3, norm="nap"), torch.zeros(2, 4, 10, 10, dtype=torch.uint8))
    # MinAtarCNN: [InputCast, Conv2d, norm, ReLU, Flatten, Linear, norm, ReLU, Linear]
    assert summary(q) == [("1", "3", "2", [("5", 64)], 16), ("5", "7", "6", [("8", 1)], 128)]


class SharedTrunk(nn.Module):
    """An SB3-like policy: one feature layer read by two heads."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True))
        self.pi = nn.Linear(8, 2)
        self.v = nn.Linear(8, 1)

    def forward(self, x):
        h = self.features(x)
        return self.pi(h), self.v(h)


def test_a_unit_read_by_two_heads_has_both_as_outgoing():
    trace = trace_hidden_units(SharedTrunk(), torch.randn(3, 4))
    assert summary(trace) == [("features.0", "features.1", None, [("pi", 1), ("v", 1)], 8)]


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.act, self.b, self.out = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.act(self.a(x))
        return self.out(self.b(h) + h)


class SharedActivation(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.act, self.b, self.out = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.act(self.b(self.act(self.a(x)))))


class ReturnsFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.act, self.out = nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)

    def forward(self, x):
        h = self.act(self.a(x))
        return self.out(h), h


class PreActivationRead(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.act, self.out = nn.Linear(4, 8), nn.ReLU(), nn.Linear(16, 2)

    def forward(self, x):
        z = self.a(x)
        return self.out(torch.cat([self.act(z), z], dim=-1))


@pytest.mark.parametrize("model, reason", [
    (Residual(), "read by the operation add"),
    (SharedActivation(), "called 2 times"),
    (ReturnsFeatures(), "returned by the model"),
    (PreActivationRead(), "also read elsewhere"),
])
def test_untraceable_structures_are_skipped_with_the_reason(model, reason):
    trace = trace_hidden_units(model, torch.randn(3, 4))
    assert trace.layers == []
    assert list(trace.skipped) == ["act"]
    assert reason in trace.skipped["act"]


def test_residual_mlp_inner_units_are_traced_and_resnet_has_none():
    trace = trace_hidden_units(ResidualMLP(4, 2, 8, 2), torch.randn(3, 4))
    assert summary(trace) == [("blocks.0.fc1", "blocks.0.act", None, [("blocks.0.fc2", 1)], 8), ("blocks.1.fc1", "blocks.1.act", None, [("blocks.1.fc2", 1)], 8)]
    resnet = trace_hidden_units(ResNet18(10, nf=4), torch.randn(2, 3, 16, 16))
    assert resnet.layers == [] and resnet.skipped == {}  # functional F.relu: no activation module


def test_tracing_changes_no_state():
    net = MLP(5, 3, hidden=(7, 6), norm="batchnorm", dropout=0.5)
    net.train()
    net[4].training = False  # a mixed mode must come back as it was
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    x = torch.randn(4, 5)
    rng = torch.get_rng_state()
    trace_hidden_units(net, x)
    assert [m.training for m in net.modules()] == modes
    assert all(torch.equal(stats[k], v) for k, v in net.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_unknown_layer_name_is_an_error():
    with pytest.raises(ValueError, match="not modules"):
        trace_hidden_units(MLP(3, 2), torch.randn(2, 3), layers=["nope"])


def test_outgoing_columns_and_unit_means():
    out = OutgoingLayer("x", nn.Linear(12, 2), block=3)
    assert out.columns(torch.tensor([0, 2])).tolist() == [0, 1, 2, 6, 7, 8]
    net = MinAtarCNN(2, 3)
    layer = trace_hidden_units(net, torch.rand(2, 2, 10, 10)).layers[0]
    h = torch.arange(3 * 16 * 8 * 8, dtype=torch.float32).reshape(3, 16, 8, 8)
    assert torch.allclose(layer.unit_mean(h), h.mean((0, 2, 3)))
    assert torch.allclose(layer.unit_mean(h, per_position=True), h.mean(0).reshape(16, 64))


@pytest.mark.parametrize("norm, layout", [("layernorm", "nc"), ("batchnorm", "nchw"), ("groupnorm", "nchw"), ("evonorm_b0", "nchw"), ("dyt", "nc")])
def test_fresh_norm_has_the_initial_values(norm, layout):
    from normrl.normalization.registry import create_norm_layer

    layer = create_norm_layer(norm, 8, layout=layout)
    initial = {k: v.clone() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(1.7)
        for b in layer.buffers():
            if b.is_floating_point():
                b.add_(2.3)
    fresh = fresh_norm(layer)
    assert fresh is not layer
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, initial[k]), k


def test_fresh_norm_of_torch_norms_uses_reset_parameters():
    bn = nn.BatchNorm1d(4)
    with torch.no_grad():
        bn.weight.fill_(3.0)
        bn.running_var.fill_(9.0)
    fresh = fresh_norm(bn)
    assert torch.equal(fresh.weight, torch.ones(4)) and torch.equal(fresh.running_var, torch.ones(4))
    assert torch.equal(bn.weight, torch.full((4,), 3.0))
