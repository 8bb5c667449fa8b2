import pytest
import torch
import torch.nn as nn

from normrl.agents.dqn.loss import td_loss, td_targets, update_target
from normrl.agents.dqn.networks import epsilon_greedy, lazy_epsilon_greedy, linear_epsilon


def test_linear_epsilon_values():
    assert linear_epsilon(0, 1.0, 0.05, 1000) == 1.0
    assert linear_epsilon(500, 1.0, 0.05, 1000) == pytest.approx(0.525)
    assert linear_epsilon(1000, 1.0, 0.05, 1000) == pytest.approx(0.05)
    assert linear_epsilon(10**6, 1.0, 0.05, 1000) == 0.05
    assert linear_epsilon(250, 0.5, 0.1, 500) == pytest.approx(0.3)


def test_epsilon_greedy_rates():
    q = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    assert (epsilon_greedy(q, 0.0, g) == 1).all()
    a = epsilon_greedy(q, 0.4, g)
    # greedy with prob 0.6 plus a uniform pick of action 1 with prob 0.4/4
    assert (a == 1).float().mean().item() == pytest.approx(0.7, abs=0.015)
    assert (a == 3).float().mean().item() == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("eps", [0.0, 0.3, 0.97, 1.0])
def test_lazy_epsilon_greedy_equals_eager_and_runs_only_the_greedy_rows(eps):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5))
    seen = []

    def q_network(x):
        seen.append(x.clone())
        return net(x)

    for n in (1, 3, 64):
        obs = torch.randn(n, 3)
        for seed in range(40):
            seen.clear()
            with torch.no_grad():
                lazy = lazy_epsilon_greedy(q_network, obs, 5, eps, torch.Generator().manual_seed(seed))
                eager = epsilon_greedy(net(obs), eps, torch.Generator().manual_seed(seed))
            assert torch.equal(lazy, eager)
            greedy = ~(torch.rand(n, generator=torch.Generator().manual_seed(seed)) < eps) if eps > 0 else torch.ones(n, dtype=torch.bool)
            if greedy.any():
                assert len(seen) == 1 and torch.equal(seen[0], obs[greedy])  # only the greedy rows
            else:
                assert seen == []


def test_double_dqn_targets_use_online_argmax():
    q_online = torch.tensor([[1.0, 5.0], [3.0, 0.0]])
    q_target = torch.tensor([[10.0, 2.0], [4.0, 7.0]])
    r = torch.tensor([1.0, 0.5])
    d = torch.tensor([0.9, 0.0])
    assert torch.allclose(td_targets(q_online, q_target, r, d), torch.tensor([1.0 + 0.9 * 2.0, 0.5]))
    assert torch.allclose(td_targets(None, q_target, r, d), torch.tensor([1.0 + 0.9 * 10.0, 0.5]))


def test_td_loss_kinds():
    q, t = torch.tensor([0.0, 3.0]), torch.tensor([0.5, 0.0])
    assert td_loss(q, t, "mse").item() == pytest.approx((0.25 + 9.0) / 2)
    assert td_loss(q, t, "huber").item() == pytest.approx((0.5 * 0.25 + 2.5) / 2)
    with pytest.raises(ValueError, match="mse"):
        td_loss(q, t, "l1")


def _pair():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    bn_o, bn_t = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    bn_o.running_mean.fill_(3.0)
    return nn.Sequential(online, bn_o), nn.Sequential(target, bn_t)


def test_target_update_hard_copies_everything():
    online, target = _pair()
    update_target(target, online, 1.0)
    for a, b in zip(online.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)


def test_target_update_polyak():
    online, target = _pair()
    before = [p.clone() for p in target.parameters()]
    update_target(target, online, 0.1)
    for p_t, p_o, p0 in zip(target.parameters(), online.parameters(), before):
        assert torch.allclose(p_t, 0.1 * p_o + 0.9 * p0)
    assert torch.equal(target[1].running_mean, torch.full((2,), 3.0))
