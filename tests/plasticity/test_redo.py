"""ReDo: exactly the τ-dormant units are recycled (fresh incoming weights, zero bias,
zero outgoing weights, zero optimizer state of those entries only), so the output of a
network whose recycled units were dead is unchanged."""
from __future__ import annotations

import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn as nn

from normrl.agents.ppo.networks import ActorCritic
from normrl.metrics.functional import unit_scores
from normrl.networks import MLP, MinAtarCNN, NatureCNN
from normrl.networks.resnet import ResNet18
from normrl.plasticity import build_interventions
from normrl.plasticity.redo import ReDo

from .nets import nap_mlp


@torch.no_grad()
def set_dead(layer: nn.Module, units, alive_bias: float = 0.5):
    """For nonnegative inputs: ``units`` output negative pre-activations (dead after a
    ReLU), every other unit a positive one (alive)."""
    w = layer.weight
    keep = [i for i in range(w.shape[0]) if i not in set(units)]
    w[keep] = w[keep].abs() + 0.05
    w[list(units)] = -(w[list(units)].abs() + 0.05)
    layer.bias[keep] = alive_bias
    layer.bias[list(units)] = -1.0


def train(model, opt, x, steps, iv=None, start=1):
    for step in range(start, start + steps):
        opt.zero_grad()
        (model(x) - 1.0).square().mean().backward()
        opt.step()
        if iv is not None:
            iv.after_step(step)


def adam_state(opt):
    return {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}


def params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_exactly_the_dead_units_are_recycled_in_an_mlp():
    torch.manual_seed(0)
    net = MLP(4, 3, hidden=(8, 8))
    x = torch.rand(64, 4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    train(net, opt, x, 3)  # every entry of the optimizer state is nonzero now
    set_dead(net[0], [1, 5])
    set_dead(net[2], [3])
    redo = ReDo(tau=0.0, every=4, seed=3)
    redo.attach(net, opt)
    train(net, opt, x, 1, redo, start=3)  # step 3: not a recycling step
    assert redo.last_event == {}
    train(net, opt, x, 1, start=4)  # step 4's update; its input is the probe
    w_before, state_before = params(net), adam_state(opt)
    out_before = net(x).detach()
    redo.after_step(4)
    assert redo.last_event == {"reset_units/0": 2.0, "reset_units/2": 1.0}
    after = params(net)
    d0, d2 = [1, 5], [3]
    k0, k2 = [i for i in range(8) if i not in d0], [i for i in range(8) if i not in d2]
    # incoming: new rows only for the recycled units, from PyTorch's default init bound
    assert torch.equal(after["0.weight"][k0], w_before["0.weight"][k0])
    assert not torch.any(after["0.weight"][d0] == w_before["0.weight"][d0])
    assert after["0.weight"][d0].abs().max() <= 1 / math.sqrt(4)
    assert torch.equal(after["0.bias"][d0], torch.zeros(2)) and torch.equal(after["0.bias"][k0], w_before["0.bias"][k0])
    assert torch.equal(after["2.bias"][d2], torch.zeros(1)) and torch.equal(after["2.bias"][k2], w_before["2.bias"][k2])
    # outgoing: zero columns; layer 2's recycled row is new except in the zeroed columns
    assert torch.all(after["2.weight"][:, d0] == 0)
    assert torch.equal(after["2.weight"][k2][:, k0], w_before["2.weight"][k2][:, k0])
    assert not torch.any(after["2.weight"][d2][:, k0] == w_before["2.weight"][d2][:, k0])
    assert torch.all(after["4.weight"][:, d2] == 0) and torch.equal(after["4.weight"][:, k2], w_before["4.weight"][:, k2])
    assert torch.equal(after["4.bias"], w_before["4.bias"])
    # the recycled units were dead: the output is exactly the same
    assert torch.equal(net(x).detach(), out_before)
    # optimizer state: zero at exactly those entries, the rest untouched, step kept
    zeroed = {
        "0.weight": (0, d0), "0.bias": (0, d0), "2.weight": None, "2.bias": (0, d2), "4.weight": (1, d2),
    }
    named = dict(net.named_parameters())
    for name, p in named.items():
        before, now = state_before[id(p)], opt.state[p]
        assert torch.equal(now["step"], before["step"])
        for key in ("exp_avg", "exp_avg_sq"):
            mask = torch.zeros_like(p, dtype=torch.bool)
            spec = zeroed.get(name, ())
            if name == "2.weight":
                mask[:, d0] = True
                mask[d2, :] = True
            elif spec:
                dim, idx = spec
                mask.index_fill_(dim, torch.tensor(idx), True)
            assert torch.all(now[key][mask] == 0), (name, key)
            assert torch.equal(now[key][~mask], before[key][~mask]), (name, key)
            if mask.any():
                assert torch.count_nonzero(before[key][mask]) > 0  # it had something to clear


def test_tau_selects_the_dormant_units_by_their_score():
    torch.manual_seed(1)
    net = MLP(4, 2, hidden=(10,))
    x = torch.rand(32, 4)
    set_dead(net[0], [])
    with torch.no_grad():
        net[0].weight[[2, 7]] *= 0.01  # weakly active: score well below 0.1
        net[0].bias[[2, 7]] = 0.0
    acts = torch.relu(net[0](x)).detach()
    expected = (unit_scores(acts) <= 0.1).nonzero().squeeze(1).tolist()
    assert expected == [2, 7]
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    redo = ReDo(tau=0.1, every=1)
    redo.attach(net, opt)
    old = net[0].weight.detach().clone()
    train(net, opt, x, 1, redo)
    changed = (net[0].weight != old).any(1).nonzero().squeeze(1).tolist()
    assert changed == expected
    assert redo.last_event == {"reset_units/0": 2.0}


def test_conv_channel_and_its_flatten_column_block():
    torch.manual_seed(2)
    net = MinAtarCNN(2, 3)
    x = torch.rand(16, 2, 10, 10)
    set_dead(net[1], [3], alive_bias=0.1)
    set_dead(net[4], [], alive_bias=0.1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    redo = ReDo(tau=0.0, every=1)
    redo.attach(net, opt)
    train(net, opt, x, 1)
    out_before, w_before = net(x).detach(), params(net)
    redo.after_step(1)
    assert redo.last_event == {"reset_units/1": 1.0}
    block = list(range(3 * 64, 4 * 64))
    others = [c for c in range(16 * 64) if c not in block]
    assert torch.all(net[4].weight[:, block] == 0) and torch.equal(net[4].weight[:, others], w_before["4.weight"][:, others])
    assert not torch.equal(net[1].weight[3], w_before["1.weight"][3]) and net[1].bias[3] == 0
    assert torch.equal(net[1].weight[[0, 1, 2, 4]], w_before["1.weight"][[0, 1, 2, 4]])
    assert torch.equal(net(x).detach(), out_before)
    assert torch.all(opt.state[net[4].weight]["exp_avg"][:, block] == 0)
    assert torch.all(opt.state[net[1].weight]["exp_avg_sq"][3] == 0)


def test_conv_to_conv_channel_in_a_channels_last_nature_cnn():
    torch.manual_seed(3)
    net = NatureCNN(1, 2, input_size=(36, 36), channels_last=True)
    x = torch.rand(4, 1, 36, 36)
    set_dead(net[1], [7], alive_bias=0.1)
    for i in (3, 5, 8):
        set_dead(net[i], [], alive_bias=0.1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    redo = ReDo(tau=0.0, every=1)
    redo.attach(net, opt)
    train(net, opt, x, 1)
    out_before = net(x).detach()
    redo.after_step(1)
    assert redo.last_event == {"reset_units/1": 1.0}
    assert torch.all(net[3].weight[:, 7] == 0) and net[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.all(opt.state[net[3].weight]["exp_avg"][:, 7] == 0)
    torch.testing.assert_close(net(x).detach(), out_before, rtol=0, atol=1e-6)  # conv kernels may reorder sums


def test_units_read_by_both_heads_are_zeroed_in_both():
    class Trunk(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
            self.pi, self.v = nn.Linear(8, 2), nn.Linear(8, 1)

        def forward(self, x):
            h = self.features(x)
            return self.pi(h), self.v(h)

    net = Trunk()
    set_dead(net.features[0], [0, 6])
    x = torch.rand(16, 4)
    opt = torch.optim.Adam(net.parameters())
    redo = ReDo(tau=0.0, every=1)
    redo.attach(net, opt)
    opt.zero_grad()
    sum(o.sum() for o in net(x)).backward()
    opt.step()
    before = [o.detach() for o in net(x)]
    redo.after_step(1)
    assert torch.all(net.pi.weight[:, [0, 6]] == 0) and torch.all(net.v.weight[:, [0, 6]] == 0)
    assert all(torch.equal(a.detach(), b) for a, b in zip(net(x), before))


def test_actor_critic_training_input_is_captured_not_the_acting_batch():
    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    net = ActorCritic(space, 2, hidden=(8, 8), activation="relu")
    redo = ReDo(tau=0.0, every=1)
    opt = torch.optim.Adam(net.parameters())
    redo.attach(net, opt)
    train_x = torch.rand(16, 4)
    logits, value = net(train_x)
    (logits.sum() + value.sum()).backward()
    opt.step()
    with torch.no_grad():  # acting after the update: not a training forward
        net(-torch.rand(16, 4))
    net.train(False)
    net(-torch.rand(16, 4))  # eval-mode forward: not a training forward either
    net.train(True)
    assert redo._input() is train_x


def test_layernorm_between_changes_the_output_batchnorm_keeps_it():
    x = torch.rand(32, 4)
    for norm, preserved in (("batchnorm", True), ("layernorm", False)):
        torch.manual_seed(4)
        net = MLP(4, 3, hidden=(8,), norm=norm)
        with torch.no_grad():  # after the norm: unit 2 always <= 0 (dead), the others > 0
            net[1].bias.fill_(5.0)
            net[1].bias[2] = -50.0
        opt = torch.optim.SGD(net.parameters(), lr=0.0)
        redo = ReDo(tau=0.0, every=1)
        redo.attach(net, opt)
        train(net, opt, x, 1)
        net.eval()
        before = net(x).detach()
        net.train()
        redo.after_step(1)
        assert redo.last_event == {"reset_units/0": 1.0}
        assert net[1].bias[2] == 0 and net[1].weight[2] == 1  # the norm's unit is fresh
        net.eval()
        same = torch.allclose(net(x).detach(), before, atol=1e-6)
        assert same == preserved, norm


def test_with_nap_the_projected_norms_hold_after_recycling():
    model, opt = nap_mlp(in_dim=4, hidden=(16, 16))
    with torch.no_grad():
        model[1].bias.fill_(5.0)  # LayerNorm offsets: alive ...
        model[4].bias.fill_(5.0)
        model[1].bias[[0, 3, 9]] = -50.0  # ... except three dead units
    compose = build_interventions(["redo:tau=0.0,every=1"], seed=0)
    compose.attach(model, opt)
    x = torch.rand(32, 4)
    opt.zero_grad()
    model(x).square().mean().backward()
    opt.step()
    compose.after_step(1)
    assert compose.last_event.get("redo/reset_units/0") == 3.0
    proj = opt.projector
    for name, norm in proj.weight_norms().items():
        torch.testing.assert_close(norm, proj.initial_weight_norms()[name])


def test_same_seed_same_draws_and_state_dict_round_trip():
    def run(save_at=None, steps=6, seed=11):
        torch.manual_seed(5)
        net = MLP(4, 3, hidden=(8, 8))
        x = torch.rand(16, 4)
        set_dead(net[0], [1, 2, 6])
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        redo = ReDo(tau=0.0, every=2, seed=seed)
        redo.attach(net, opt)
        events = []
        for step in range(1, steps + 1):
            if step == save_at:
                buf = io.BytesIO()
                torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "redo": redo.state_dict()}, buf)
                buf.seek(0)
                saved = torch.load(buf, weights_only=True)
                torch.manual_seed(99)  # a fresh process: other RNG state
                net = MLP(4, 3, hidden=(8, 8))
                opt = torch.optim.Adam(net.parameters(), lr=1e-2)
                redo = ReDo(tau=0.0, every=2, seed=11)
                redo.attach(net, opt)
                redo.load_state_dict(saved["redo"])
                net.load_state_dict(saved["model"])
                opt.load_state_dict(saved["opt"])
            with torch.no_grad():
                net[0].weight[[1, 2, 6]] = -net[0].weight[[1, 2, 6]].abs() - 1  # keep killing them
                net[0].bias[[1, 2, 6]] = -1.0
            train(net, opt, x, 1, redo, start=step)
            events.append(dict(redo.last_event))
        return params(net), events

    full, ev_full = run()
    resumed, ev_resumed = run(save_at=4)
    assert ev_full == ev_resumed and ev_full[1] and ev_full[3]
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    again, _ = run()
    assert all(torch.equal(full[k], again[k]) for k in full)
    other, _ = run(seed=12)  # another seed draws other rows for the recycled units only
    assert not torch.equal(other["0.weight"][[1, 2, 6]], full["0.weight"][[1, 2, 6]])


def test_untraceable_network_warns_once_and_changes_nothing():
    net = ResNet18(3, nf=4, norm="batchnorm")
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    redo = ReDo(tau=1.0, every=1)
    redo.attach(net, opt)
    x = torch.rand(2, 3, 8, 8)
    before = params(net)
    with pytest.warns(UserWarning, match="no hidden units of ResNet18 can be traced"):
        train(net, opt, x, 1, redo)
    train(net, opt, x, 1, redo, start=2)  # no second warning (an error under -W error would show it)
    assert redo.last_event == {}
    assert all(torch.equal(before[k], v) for k, v in params(net).items())


def test_without_a_training_forward_it_warns_and_waits():
    net = MLP(3, 2)
    redo = ReDo(every=1)
    redo.attach(net, torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.warns(UserWarning, match="no training forward"):
        redo.after_step(1)
    redo.set_probe(torch.rand(4, 3))
    redo.after_step(2)  # scores the probe now (nothing dormant at tau=0.025 in a fresh net is not asserted)
    assert redo.layers is not None and len(redo.layers) == 2


def test_bad_options():
    with pytest.raises(ValueError, match="tau"):
        ReDo(tau=-1)
    with pytest.raises(ValueError, match="every"):
        ReDo(every=0)
    with pytest.raises(ValueError, match="probe_size"):
        ReDo(probe_size=0)
    with pytest.raises(ValueError, match="either every"):
        ReDo(every=5, at="task_end")
