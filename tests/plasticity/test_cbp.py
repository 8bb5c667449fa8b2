"""Continual backprop: the utility is the paper's running contribution (checked against
a direct computation), the replaced units are the lowest-utility mature ones at the
accumulated rate ρ, immature units are never replaced, and the bias transfer keeps the
output of a constant unit unchanged."""
from __future__ import annotations

import copy
import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn as nn

from normrl.agents.dqn.networks import build_q_network
from normrl.agents.ppo.networks import ActorCritic
from normrl.networks import MLP
from normrl.plasticity import build_interventions
from normrl.plasticity.cbp import ContinualBackprop

from .nets import nap_mlp


def data(step: int, shape=(16, 4)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(500 + step))


def step_once(net, opt, x, cbp, step, extra=None):
    opt.zero_grad()
    out = net(x)
    out = out[0].sum() + out[1].sum() if isinstance(out, tuple) else (out - 1).square().mean()
    out.backward()
    opt.step()
    if extra is not None:
        extra()
    cbp.after_step(step)


def replaced_rows(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    return (before != after).any(1).nonzero().squeeze(1).tolist()


def test_replacements_follow_the_accumulated_rate():
    torch.manual_seed(0)
    net = MLP(4, 3, hidden=(10, 7))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    rho = 0.037
    cbp = ContinualBackprop(replacement_rate=rho, maturity_threshold=0)  # every unit is mature after one update
    cbp.attach(net, opt)
    counts = {"0": 0, "2": 0}
    for t in range(1, 61):
        step_once(net, opt, data(t), cbp, t)
        for key, n in cbp.last_event.items():
            counts[key.split("/")[1]] += int(n)
        assert counts == {"0": math.floor(rho * 10 * t), "2": math.floor(rho * 7 * t)}


def test_immature_units_are_never_replaced_and_the_count_uses_eligible_units():
    torch.manual_seed(1)
    net = MLP(4, 3, hidden=(6,))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # weights change only by replacement
    m, rho = 5, 0.25
    cbp = ContinualBackprop(replacement_rate=rho, maturity_threshold=m)
    cbp.attach(net, opt)
    ages = [0] * 6
    eligible_sum, replaced = 0, 0
    for t in range(1, 80):
        before = net[0].weight.detach().clone()
        step_once(net, opt, data(t), cbp, t)
        ages = [a + 1 for a in ages]
        eligible_sum += sum(a > m for a in ages)
        rows = replaced_rows(before, net[0].weight)
        assert all(ages[i] > m for i in rows), (t, rows, ages)
        for i in rows:
            ages[i] = 0
        replaced += len(rows)
        assert replaced == math.floor(rho * eligible_sum)
    assert replaced > 10


def reference_contribution(acts, w_out, eta, u):
    """Eq. 1 on a batch: u <- eta*u + (1-eta) * mean|h| * sum_k |w_out[k, i]|."""
    return eta * u + (1 - eta) * acts.abs().mean(0) * w_out.abs().sum(0)


def test_utility_is_the_running_contribution_and_the_lowest_mature_unit_is_replaced():
    torch.manual_seed(2)
    net = MLP(4, 3, hidden=(8,), activation="tanh")
    with torch.no_grad():
        net[2].weight.mul_(torch.tensor([1.0, 0.5, 2.0, 0.3, 1.5, 0.9, 1.2, 0.7]))  # distinct utilities
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    m, eta = 40, 0.99
    cbp = ContinualBackprop(replacement_rate=1 / 8, maturity_threshold=m, decay_rate=eta)
    cbp.attach(net, opt)
    u = torch.zeros(8)
    for t in range(1, m + 1):  # no unit is mature yet (age <= m)
        x = data(t)
        step_once(net, opt, x, cbp, t)
        assert cbp.last_event == {}
        u = reference_contribution(torch.tanh(net[0](x)).detach(), net[2].weight.detach(), eta, u)
    got = cbp.utilities(bias_corrected=False)["0"]
    torch.testing.assert_close(got, u, rtol=1e-5, atol=0)
    corrected = cbp.utilities()["0"]
    torch.testing.assert_close(corrected, u / (1 - eta ** m), rtol=1e-5, atol=0)
    # step m+1: every unit is mature, the credit reaches one unit: the lowest utility goes
    x = data(m + 1)
    u = reference_contribution(torch.tanh(net[0](x)).detach(), net[2].weight.detach(), eta, u)
    before = net[0].weight.detach().clone()
    step_once(net, opt, x, cbp, m + 1)
    assert cbp.last_event == {"reset_units/0": 1.0}
    assert replaced_rows(before, net[0].weight) == [int(u.argmin())]
    assert net[2].weight[:, int(u.argmin())].abs().sum() == 0


@pytest.mark.parametrize("utility", ["mean_corrected", "adaptable"])
def test_mean_corrected_and_adaptable_utilities(utility):
    torch.manual_seed(3)
    net = MLP(4, 3, hidden=(6,), activation="tanh")
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    eta = 0.9
    cbp = ContinualBackprop(replacement_rate=0.0, decay_rate=eta, utility=utility)
    cbp.attach(net, opt)
    u, f = torch.zeros(6), torch.zeros(6)
    for t in range(1, 8):
        x = data(t)
        step_once(net, opt, x, cbp, t)
        h = torch.tanh(net[0](x)).detach()
        f = eta * f + (1 - eta) * h.mean(0)
        f_hat = f / (1 - eta ** t)
        x_t = (h - f_hat).abs().mean(0) * net[2].weight.detach().abs().sum(0)
        if utility == "adaptable":
            x_t = x_t / net[0].weight.detach().abs().sum(1)
        u = eta * u + (1 - eta) * x_t
    torch.testing.assert_close(cbp.utilities(bias_corrected=False)["0"], u, rtol=1e-5, atol=1e-7)


def constant_unit_mlp(bias_transfer: bool):
    torch.manual_seed(4)
    net = MLP(4, 3, hidden=(6,))
    with torch.no_grad():
        net[0].weight.abs_()
        net[0].bias.fill_(0.5)  # every unit alive on nonnegative inputs
        net[0].weight[4] = 0.0
        net[0].bias[4] = 0.7  # unit 4: h = 0.7 on every input
        net[2].weight[:, 4] = 1e-3  # ... with the smallest contribution
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    cbp = ContinualBackprop(replacement_rate=1 / 6, maturity_threshold=3, bias_transfer=bias_transfer)
    cbp.attach(net, opt)
    return net, opt, cbp


def test_bias_transfer_keeps_the_output_of_a_constant_unit():
    probe = torch.rand(50, 4)
    for transfer in (True, False):
        net, opt, cbp = constant_unit_mlp(transfer)
        for t in range(1, 4):
            step_once(net, opt, torch.rand(16, 4), cbp, t)
        before = net(probe).detach()
        w4 = net[2].weight[:, 4].detach().clone()
        step_once(net, opt, torch.rand(16, 4), cbp, 4)
        assert cbp.last_event == {"reset_units/0": 1.0}
        assert net[0].bias[4] == 0 and torch.all(net[2].weight[:, 4] == 0)
        after = net(probe).detach()
        if transfer:
            torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
        else:
            torch.testing.assert_close(before - after, (w4 * 0.7).expand_as(before), rtol=0, atol=1e-6)


def test_bias_transfer_through_a_flatten_keeps_the_output():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(2, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 3))
    with torch.no_grad():
        net[0].weight.abs_()
        net[0].bias.fill_(0.2)
        net[0].weight[9] = 0.0
        net[0].bias[9] = 0.3  # channel 9: 0.3 at every position
        net[3].weight[:, 9 * 64:10 * 64] *= 1e-3
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    cbp = ContinualBackprop(replacement_rate=1 / 16, maturity_threshold=2)
    cbp.attach(net, opt)
    probe = torch.rand(8, 2, 10, 10)
    for t in range(1, 3):
        step_once(net, opt, torch.rand(8, 2, 10, 10), cbp, t)
    before = net(probe).detach()
    step_once(net, opt, torch.rand(8, 2, 10, 10), cbp, 3)
    assert cbp.last_event == {"reset_units/0": 1.0}
    assert torch.all(net[3].weight[:, 9 * 64:10 * 64] == 0) and net[0].bias[9] == 0
    torch.testing.assert_close(net(probe).detach(), before, rtol=0, atol=1e-5)


def test_optimizer_state_of_replaced_units_only_is_zeroed():
    torch.manual_seed(6)
    net = MLP(4, 3, hidden=(6,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    cbp = ContinualBackprop(replacement_rate=1 / 6, maturity_threshold=2)
    cbp.attach(net, opt)
    for t in range(1, 3):
        step_once(net, opt, data(t), cbp, t)
    x = data(3)
    opt.zero_grad()
    (net(x) - 1).square().mean().backward()
    opt.step()
    state = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in net.parameters()}
    before = net[0].weight.detach().clone()
    cbp.after_step(3)
    (i,) = replaced_rows(before, net[0].weight)
    for name, p in net.named_parameters():
        mask = torch.zeros_like(p, dtype=torch.bool)
        if name in ("0.weight", "0.bias"):
            mask[i] = True
        elif name == "2.weight":
            mask[:, i] = True
        for key in ("exp_avg", "exp_avg_sq"):
            now, old = opt.state[p][key], state[id(p)][key]
            assert torch.all(now[mask] == 0) and torch.equal(now[~mask], old[~mask]), (name, key)


def run_with_save(save_at=None, steps=70, extra=None, copy_target=False):
    """Adam training with frequent replacements; optionally a save/restore at
    ``save_at`` through torch.save / torch.load(weights_only=True)."""

    def build():
        torch.manual_seed(7)
        net = MLP(4, 3, hidden=(8, 8), activation="tanh")
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        cbp = ContinualBackprop(replacement_rate=0.02, maturity_threshold=5, seed=3)
        cbp.attach(net, opt)
        return net, opt, cbp

    net, opt, cbp = build()
    target = None
    events = []
    for t in range(1, steps + 1):
        if copy_target and t == 2:  # after attach and the first update: hooks are in place
            target = copy.deepcopy(net)
        if t == save_at:
            buf = io.BytesIO()
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "cbp": cbp.state_dict()}, buf)
            buf.seek(0)
            saved = torch.load(buf, weights_only=True)
            net, opt, cbp = build()
            cbp.load_state_dict(saved["cbp"])
            net.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
        def between():  # after the update's forward, before after_step
            if extra is not None:
                extra(net)
            if target is not None:
                target(data(t + 100)).sum().backward()  # a copy taken after attach: its hooks are no-ops

        step_once(net, opt, data(t), cbp, t, extra=between)
        events.append(dict(cbp.last_event))
    result = {n: p.detach().clone() for n, p in net.named_parameters()}
    result.update({f"utility/{k}": v for k, v in cbp.utilities(bias_corrected=False).items()})
    return result, events


def test_state_dict_round_trip_continues_bit_exactly():
    full, ev_full = run_with_save()
    assert sum(len(e) for e in ev_full) > 5
    for save_at in (20, 41):  # mid-buffer, and after a fold
        resumed, ev_resumed = run_with_save(save_at=save_at)
        assert ev_resumed == ev_full
        assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_only_training_forwards_count_and_copies_do_not_feed_it():
    full, ev_full = run_with_save()

    def other_forwards(net):
        with torch.no_grad():
            net(torch.randn(5, 4))  # acting
        net.eval()
        net(torch.randn(5, 4))  # evaluation
        net.train()

    a, ev_a = run_with_save(extra=other_forwards)
    b, ev_b = run_with_save(copy_target=True)
    for got, ev in ((a, ev_a), (b, ev_b)):
        assert ev == ev_full and all(torch.equal(full[k], got[k]) for k in full)


def test_actor_critic_and_dqn_networks_track_every_hidden_layer():
    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    ac = ActorCritic(space, 2, hidden=(8, 8))
    opt = torch.optim.Adam(ac.parameters(), lr=1e-3)
    cbp = ContinualBackprop(replacement_rate=0.05, maturity_threshold=3)
    cbp.attach(ac, opt)
    for t in range(1, 11):
        step_once(ac, opt, data(t), cbp, t)
    assert [(s.layer.name, s.t) for s in cbp.states] == [("actor.1.0", 10), ("actor.1.2", 10), ("critic.1.0", 10), ("critic.1.2", 10)]
    minatar = gym.spaces.Box(0, 1, (4, 10, 10), np.uint8)
    q = build_q_network(minatar, 3)
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    cbp = ContinualBackprop(replacement_rate=0.05, maturity_threshold=3)
    cbp.attach(q, opt)
    total = 0
    for t in range(1, 11):
        step_once(q, opt, (torch.rand(8, 4, 10, 10) > 0.7).to(torch.uint8), cbp, t)
        total += sum(cbp.last_event.values())
    assert [(s.layer.name, s.t, s.positions) for s in cbp.states] == [("1", 10, 64), ("4", 10, 1)]
    assert total > 0


def test_with_nap_the_projected_norms_hold():
    model, opt = nap_mlp(in_dim=4, hidden=(16, 16))
    compose = build_interventions(["cbp:replacement_rate=0.1,maturity_threshold=1"], seed=0)
    compose.attach(model, opt)
    for t in range(1, 6):
        opt.zero_grad()
        model(data(t)).square().mean().backward()
        opt.step()
        compose.after_step(t)
    assert any(k.startswith("cbp/reset_units/") for k in compose.last_event)
    for name, norm in opt.projector.weight_norms().items():
        torch.testing.assert_close(norm, opt.projector.initial_weight_norms()[name])


def test_bad_options():
    with pytest.raises(ValueError, match="replacement_rate"):
        ContinualBackprop(replacement_rate=2.0)
    with pytest.raises(ValueError, match="maturity_threshold"):
        ContinualBackprop(maturity_threshold=-1)
    with pytest.raises(ValueError, match="decay_rate"):
        ContinualBackprop(decay_rate=1.0)
    with pytest.raises(ValueError, match="utility must be one of"):
        ContinualBackprop(utility="weight")


def test_channels_last_network_has_the_same_utilities():
    from normrl.networks import NatureCNN

    results = []
    for channels_last in (False, True):
        torch.manual_seed(8)
        net = NatureCNN(1, 2, input_size=(36, 36), channels_last=channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.0)
        cbp = ContinualBackprop(replacement_rate=0.0)
        cbp.attach(net, opt)
        for t in range(1, 4):
            step_once(net, opt, torch.rand(6, 1, 36, 36, generator=torch.Generator().manual_seed(t)), cbp, t)
        results.append(cbp.utilities())
    assert list(results[0]) == ["1", "3", "5", "8"]
    for name in results[0]:
        torch.testing.assert_close(results[1][name], results[0][name], rtol=1e-4, atol=1e-7)


def test_instantaneous_utility_with_zero_decay_replaces_the_lowest_current_contribution():
    torch.manual_seed(9)
    net = MLP(4, 3, hidden=(8,), activation="tanh")
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    cbp = ContinualBackprop(replacement_rate=1 / 8, maturity_threshold=3, decay_rate=0.0)
    cbp.attach(net, opt)
    for t in range(1, 4):
        step_once(net, opt, data(t), cbp, t)
        assert cbp.last_event == {}
    x = data(4)
    contribution = torch.tanh(net[0](x)).detach().abs().mean(0) * net[2].weight.detach().abs().sum(0)
    before = net[0].weight.detach().clone()
    step_once(net, opt, x, cbp, 4)
    assert replaced_rows(before, net[0].weight) == [int(contribution.argmin())]


@pytest.mark.parametrize("batch", [8, 64])  # 64 x 16 x 8 x 8 activations are reduced in the hook
def test_conv_channel_utility_sums_each_flattened_position(batch):
    torch.manual_seed(10)
    net = nn.Sequential(nn.Conv2d(2, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 3))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    eta = 0.9
    cbp = ContinualBackprop(replacement_rate=0.0, decay_rate=eta)
    cbp.attach(net, opt)
    u = torch.zeros(16)
    for t in range(1, 6):
        x = torch.rand(batch, 2, 10, 10, generator=torch.Generator().manual_seed(t))
        step_once(net, opt, x, cbp, t)
        h = torch.relu(net[0](x)).detach()  # (N, 16, 8, 8)
        w = net[3].weight.detach().abs().sum(0).reshape(16, 64)
        u = eta * u + (1 - eta) * (h.abs().mean(0).reshape(16, 64) * w).sum(1)
    torch.testing.assert_close(cbp.utilities(bias_corrected=False)["0"], u, rtol=1e-5, atol=0)


@pytest.mark.parametrize("method", ["cbp:replacement_rate=0.2,maturity_threshold=1", "redo:tau=0.5,every=1"])
def test_after_a_plasticity_injection_frozen_units_are_left_alone(method):
    torch.manual_seed(11)
    net = MLP(4, 3, hidden=(8, 8))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    compose = build_interventions(["plasticity_injection:k=2,task=1", method], seed=0)
    compose.attach(net, opt)
    compose.on_task_start(0)
    for t in range(1, 4):
        opt.zero_grad()
        (net(data(t)) - 1).square().mean().backward()
        opt.step()
        compose.after_step(t)
    compose.on_task_start(1)  # injects a fresh copy of the head 2.. on top of a frozen one
    frozen = {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}
    events = {}
    for t in range(4, 12):
        opt.zero_grad()
        (net(data(t)) - 1).square().mean().backward()
        opt.step()
        compose.after_step(t)
        events.update(compose.last_event)
    name = method.split(":")[0]
    iv = next(iv for iv in compose if iv.name == name)
    assert [layer.name for layer in iv.layers] == ["0", "2.new.0"]  # the trainable hidden layers
    assert any(k.startswith(f"{name}/reset_units/") for k in events)
    now = dict(net.named_parameters())
    for n, p in frozen.items():  # frozen weights change only where a recycled unit's column is zeroed
        if n.endswith("weight"):
            changed = now[n].detach() != p
            assert torch.all(now[n].detach()[changed] == 0), n
