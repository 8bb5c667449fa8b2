"""The divergence guard with ``compile=True``: the compiled updates compute each step's
check value inside their graph and, in ``skip-update`` mode, skip a non-finite step
there. Fast tests run the same update functions uncompiled (``compiled=False``, as
tests/agents/test_compile.py does) through the agents' own ``learn``; the slow test
compiles them."""
import pytest
import torch

import normrl.agents.dqn.agent as dqn_module
import normrl.agents.dqn.compiled_update as dqn_compiled
import normrl.agents.ppo.agent as ppo_module
import normrl.agents.ppo.compiled_update as ppo_compiled
from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.agents.dqn.compiled_update import CompiledDQNUpdate
from normrl.agents.ppo.compiled_update import CompiledPPOUpdate
from normrl.agents.ppo.rollout import ChunkedRollout
from normrl.envs import make_env
from normrl.utils.errors import TrainingDiverged

from tests.agents.test_divergence import DQN_CFG, PPO_CFG, _poison


def _ppo(compiled_fn: bool, **kw):
    """A PPO agent with compile=True whose update is the compiled update's function,
    run uncompiled unless ``compiled_fn`` (and an uncompiled rollout)."""
    cfg = PPOConfig(**{**PPO_CFG.__dict__, "compile": True, **kw})
    agent = PPO(make_env("CartPole-v1", 2, "cpu", seed=0), cfg)
    agent._rollout = ChunkedRollout(agent, min(cfg.rollout_chunk, cfg.num_steps), compiled=False)
    agent._compiled = CompiledPPOUpdate(agent, compiled=compiled_fn)
    return agent


def _dqn(compiled_fn: bool, **kw):
    agent = DQN(make_env("CartPole-v1", 2, "cpu", seed=0), DQNConfig(**{**DQN_CFG.__dict__, "compile": True, **kw}))
    agent._compiled = CompiledDQNUpdate(agent, compiled=compiled_fn)
    return agent


def test_compiled_ppo_update_stops_at_the_same_update_as_eager(monkeypatch):
    """The eager test's poisoned 6th loss (tests/agents/test_divergence.py): the same
    env step, update and cause, now found in the compiled update's check values."""
    agent = _ppo(False)
    _poison(monkeypatch, ppo_compiled, "ppo_loss", {6})
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(32 * 5, progress=False)
    facts = exc.value.facts
    assert (facts["env_step"], facts["update"], facts["cause"]) == (64, 6, "loss or gradient norm")
    assert facts["parameter"].startswith("network.") and agent.num_steps == 64


def test_compiled_dqn_update_stops_naming_the_update_and_its_env_step(monkeypatch):
    agent = _dqn(False)
    seen = {}
    _poison(monkeypatch, dqn_compiled, "td_loss", {5}, value=float("nan"),
            on_call=lambda k: seen.setdefault(k, agent.num_steps))
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(64, progress=False)
    assert exc.value.facts["update"] == 5 and exc.value.facts["env_step"] == seen[5] == 16 + 2 * 4


def test_compiled_dqn_update_catches_a_nan_gradient_under_a_finite_loss(monkeypatch):
    """No clipping (DQN's default): the graph checks every gradient, not just the loss.
    ``where(True, loss, sqrt(-|q|-1))`` is the loss in value, and NaN in gradient."""
    original, calls = dqn_compiled.td_loss, [0]

    def nan_gradient(q, targets, kind):
        calls[0] += 1
        loss = original(q, targets, kind)
        if calls[0] != 3:
            return loss
        return torch.where(torch.ones((), dtype=torch.bool), loss, torch.sqrt(-(q.abs() + 1)).mean())

    monkeypatch.setattr(dqn_compiled, "td_loss", nan_gradient)
    agent = _dqn(False)
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(64, progress=False)
    assert exc.value.facts["update"] == 3 and exc.value.facts["cause"] == "loss or gradient norm"


@pytest.mark.parametrize("norm", ["none", "nap"])
def test_compiled_ppo_skip_update_equals_eager_skip_update(monkeypatch, norm):
    """Two poisoned minibatch steps in each rollout: the compiled update skips the same
    steps as the eager one (fused Adam's found_inf) and ends with the same parameters,
    Adam state and count."""
    bad = {2, 3, 7}
    _poison(monkeypatch, ppo_module, "ppo_loss", bad, value=float("nan"))
    _poison(monkeypatch, ppo_compiled, "ppo_loss", bad, value=float("nan"))
    eager = PPO(make_env("CartPole-v1", 2, "cpu", seed=0),
                PPOConfig(**{**PPO_CFG.__dict__, "on_divergence": "skip-update", "norm": norm}))
    functional = _ppo(False, on_divergence="skip-update", norm=norm)
    for agent in (eager, functional):
        agent.learn(32 * 3, progress=False)  # 12 updates, 3 skipped
        assert agent.divergence.skipped_updates == 3 and agent.num_updates == 12
    for a, b in zip(eager.network.parameters(), functional.network.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    se, sf = eager.optimizer.state_dict()["state"], functional.optimizer.state_dict()["state"]
    assert all(float(se[i]["step"]) == float(sf[i]["step"]) == 12 - 3 for i in se)  # skipped steps do not count
    for i in se:
        assert torch.allclose(se[i]["exp_avg"], sf[i]["exp_avg"], rtol=1e-5, atol=1e-7)
    assert functional.summary()["skipped_updates"] == 3


def test_compiled_dqn_skip_update_leaves_parameters_and_adam_state_unchanged(monkeypatch):
    agent = _dqn(False, on_divergence="skip-update", learning_starts=60)
    agent.learn(64, progress=False)  # three finite updates (env steps 60, 62, 64)
    assert agent.num_updates == 3
    params = [p.detach().clone() for p in agent.q_network.parameters()]
    state = {k: {n: t.clone() for n, t in v.items()} for k, v in agent.optimizer.state_dict()["state"].items()}
    _poison(monkeypatch, dqn_compiled, "td_loss", {1, 2}, value=float("inf"))
    for _ in range(2):
        agent._update()
    agent._check_divergence()
    assert all(torch.equal(a, b) for a, b in zip(agent.q_network.parameters(), params))
    now = agent.optimizer.state_dict()["state"]
    assert all(torch.equal(now[k][n], state[k][n]) for k in state for n in state[k])
    assert agent.divergence.skipped_updates == 2 and agent.num_updates == 5


def test_check_values_are_nan_or_inf_exactly_for_the_bad_steps():
    """FunctionalTraining.step's check value: loss + gradient norm with clipping, the
    loss itself without, non-finite iff the loss or a gradient is."""
    agent = _dqn(False, max_grad_norm=0.5)
    tr = agent._compiled.training
    params, exp_avgs, exp_avg_sqs, steps = tr.tensors()
    p, m, v = tr.flat([t.detach() for t in params]), tr.flat(exp_avgs), tr.flat(exp_avg_sqs)
    g = torch.full_like(p, 0.01)
    *_, check = tr.step(p, g, m, v, steps[0], torch.tensor(1e-3), torch.tensor(False), torch.tensor(2.0))
    assert float(check) == pytest.approx(2.0 + 0.01 * p.numel() ** 0.5, rel=1e-5)
    g[3] = float("inf")
    *_, check = tr.step(p, g, m, v, steps[0], torch.tensor(1e-3), torch.tensor(False), torch.tensor(2.0))
    assert not torch.isfinite(check)
    tr.max_grad_norm = 0.0
    *_, check = tr.step(p, g, m, v, steps[0], torch.tensor(1e-3), torch.tensor(False), torch.tensor(2.0))
    assert torch.isnan(check)
    g[3] = 0.0
    *_, check = tr.step(p, g, m, v, steps[0], torch.tensor(1e-3), torch.tensor(False), torch.tensor(2.0))
    assert float(check) == 2.0


@pytest.mark.parametrize("compiled_fn", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_huge_learning_rate_stops_the_compiled_dqn_or_is_skipped(compiled_fn):
    """lr 1e30: the first step leaves huge but finite weights, after which every loss is
    non-finite. ``stop`` ends the run naming the first such update; ``skip-update``
    skips all of them and the weights stay finite. With ``compiled_fn`` the real graph
    (torch.compile on the CPU: tens of seconds)."""
    agent = _dqn(compiled_fn, learning_rate=1e30, max_grad_norm=10.0)
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(64, progress=False)
    assert exc.value.facts["update"] == 2 and exc.value.facts["cause"] == "loss or gradient norm"
    agent = _dqn(compiled_fn, learning_rate=1e30, max_grad_norm=10.0, on_divergence="skip-update")
    agent.learn(64, progress=False)
    assert agent.num_updates == 25 and agent.divergence.skipped_updates == 24  # updates at env steps 16, 18, ..., 64
    assert all(torch.isfinite(p).all() for p in agent.q_network.parameters())
