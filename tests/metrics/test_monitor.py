"""PlasticityMonitor: layer rule, logging cadence, exact values, one host transfer per
logging event, TensorBoard tags read back from the event files, resume."""
import pytest
import torch
import torch.nn as nn
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from normrl.metrics import PlasticityMonitor, dormant_ratio, srank
from normrl.metrics.monitor import hidden_activation_layers


def _mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3), nn.Tanh())


def _cnn():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, 2)
    )


def _train(net, monitor, updates, obs, step_offset=0, lr=0.01):
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    out = []
    for i in range(updates):
        opt.zero_grad()
        net(obs).pow(2).mean().backward()
        opt.step()
        out.append(monitor.after_update(step_offset + i + 1))
    return out


def test_default_layer_rule_skips_output_nonlinearity():
    assert hidden_activation_layers(_mlp()) == ["2", "4"]  # not the final Tanh
    assert hidden_activation_layers(_cnn()) == ["1", "3", "6"]
    with pytest.raises(ValueError, match="layers="):
        PlasticityMonitor(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="not modules"):
        PlasticityMonitor(_mlp(), layers=["nope"])


def test_logs_only_every_n_updates_and_values_are_exact():
    torch.manual_seed(0)
    net = _mlp()
    obs = torch.randn(300, 6)
    mon = PlasticityMonitor(net, every=3, probe=obs)
    assert mon.probe.shape[0] == 256
    results = _train(net, mon, 7, obs[:32])
    assert [r is not None for r in results] == [False, False, True, False, False, True, False]
    # check values at a fresh logging event against the functions applied by hand
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    opt.zero_grad()
    net(obs[:32]).pow(2).mean().backward()
    opt.step()
    logged = mon.after_update(8)  # update 8 is not a logging one; update 9 is
    assert logged is None
    opt.zero_grad()
    net(obs[:32]).pow(2).mean().backward()
    before = net[3].weight.detach().clone()
    grad = net[3].weight.grad.clone()
    opt.step()
    logged = mon.after_update(9)
    assert logged is not None
    with torch.no_grad():
        h1 = net[2](net[1](net[0](mon.probe)))
        h2 = net[4](net[3](h1))
    assert logged["plasticity/dormant_ratio/2"] == pytest.approx(dormant_ratio(h1).item())
    assert logged["plasticity/srank/4"] == srank(h2).item()
    assert logged["plasticity/effective_lr/3"] == pytest.approx((0.01 * grad.norm() / before.norm()).item(), rel=1e-5)
    assert logged["plasticity/grad_norm/3"] == pytest.approx(grad.norm().item(), rel=1e-6)
    assert logged["plasticity/distance_from_init/3"] == pytest.approx((net[3].weight - mon.initial["3"]).norm().item(), rel=1e-5)
    w_all = torch.cat([net[i].weight.flatten() for i in (0, 3, 5)])
    assert logged["plasticity/weight_norm/all"] == pytest.approx(w_all.norm().item(), rel=1e-5)
    # pooled dormant ratio over both layers' units (16 + 16)
    from normrl.metrics.functional import unit_scores
    pooled = torch.cat([unit_scores(h1), unit_scores(h2)])
    assert logged["plasticity/dormant_ratio/all"] == pytest.approx((pooled <= 0.025).float().mean().item())


def test_every_one_uses_the_initial_weights_as_before_of_update_one():
    torch.manual_seed(1)
    net = _mlp()
    obs = torch.randn(8, 6)
    mon = PlasticityMonitor(net, every=1, probe=obs)
    w0 = net[0].weight.detach().clone()
    first = _train(net, mon, 1, obs)[0]
    w1 = net[0].weight.detach().clone()
    second = _train(net, mon, 1, obs, step_offset=1)[0]
    w2 = net[0].weight.detach().clone()
    assert first["plasticity/effective_lr/0"] == pytest.approx(((w1 - w0).norm() / w0.norm()).item(), rel=1e-5)
    assert second["plasticity/effective_lr/0"] == pytest.approx(((w2 - w1).norm() / w1.norm()).item(), rel=1e-5)
    assert second["plasticity/distance_from_init/0"] == pytest.approx((w2 - w0).norm().item(), rel=1e-5)


def test_one_host_transfer_per_logging_event(monkeypatch):
    torch.manual_seed(0)
    net = _cnn()
    obs = torch.randn(16, 2, 8, 8)
    mon = PlasticityMonitor(net, every=2, probe=obs)
    calls = {"n": 0}
    for name in ("tolist", "item", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=original, **k):
            calls["n"] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    logs = 0
    for i in range(6):
        opt.zero_grad()
        net(obs).pow(2).mean().backward()
        opt.step()
        before = calls["n"]
        out = mon.after_update(i, policy_entropy=torch.tensor(0.5))
        used = calls["n"] - before
        if out is None:
            assert used == 0
        else:
            logs += 1
            assert used == 1
    monkeypatch.undo()
    assert logs == 3 and mon.host_transfers == 3


def test_probe_is_kept_unless_forced_and_forward_leaves_bn_stats():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    mon = PlasticityMonitor(net, every=1)
    first = torch.randn(5, 3)
    mon.set_probe(first)
    mon.set_probe(torch.zeros(5, 3))
    assert torch.equal(mon.probe, first)
    mon.set_probe(torch.zeros(5, 3), force=True)
    assert torch.equal(mon.probe, torch.zeros(5, 3))
    stats = net[1].running_mean.clone()
    mon.after_update(1)
    assert torch.equal(net[1].running_mean, stats) and net.training and net[1].training


def test_tensorboard_tags_read_back_mlp_and_cnn(tmp_path):
    torch.manual_seed(0)
    for kind, net, obs in (("mlp", _mlp(), torch.randn(20, 6)), ("cnn", _cnn(), torch.randn(20, 2, 8, 8))):
        logdir = tmp_path / kind
        writer = SummaryWriter(str(logdir))
        mon = PlasticityMonitor(net, every=2, writer=writer, probe=obs)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for i in range(4):
            opt.zero_grad()
            net(obs).pow(2).mean().backward()
            opt.step()
            mon.after_update(10 * (i + 1), policy_entropy=torch.tensor(0.7))
        writer.close()
        acc = EventAccumulator(str(logdir))
        acc.Reload()
        tags = set(acc.Tags()["scalars"])
        layer = mon.layers[0]
        for metric in ("dormant_ratio", "active_fraction", "srank", "effective_rank", "stable_rank", "feature_norm"):
            assert f"plasticity/{metric}/{layer}" in tags and f"plasticity/{metric}/all" in tags
        wl = next(iter(mon.weight_layers))
        for metric in ("weight_norm", "distance_from_init", "grad_norm", "effective_lr"):
            assert f"plasticity/{metric}/{wl}" in tags and f"plasticity/{metric}/all" in tags
        events = acc.Scalars("plasticity/policy_entropy")
        assert [e.step for e in events] == [20, 40]
        assert events[0].value == pytest.approx(0.7)


def test_state_dict_round_trip_resumes_counters_and_snapshots():
    torch.manual_seed(0)
    net = _mlp()
    obs = torch.randn(12, 6)
    mon = PlasticityMonitor(net, every=4, probe=obs)
    _train(net, mon, 3, obs)  # update 3 snapshots "before" for update 4
    state = mon.state_dict()
    clone_net = _mlp()
    clone_net.load_state_dict(net.state_dict())
    resumed = PlasticityMonitor(clone_net, every=4)
    resumed.load_state_dict(state)
    torch.manual_seed(5)
    a = _train(net, mon, 1, obs, step_offset=3)[0]
    torch.manual_seed(5)
    b = _train(clone_net, resumed, 1, obs, step_offset=3)[0]
    assert a is not None and a == pytest.approx(b)
    assert torch.equal(resumed.probe, mon.probe)
