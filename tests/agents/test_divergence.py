"""The divergence guard: a non-finite loss, gradient norm or parameter stops training at
the next check naming the env step, the update and the first non-finite parameter;
``skip-update`` skips exactly the bad optimizer steps; runs record ``status: diverged``
and keep the last finite checkpoint; the plasticity monitor survives NaN features."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

import normrl.agents.dqn.agent as dqn_module
import normrl.agents.ppo.agent as ppo_module
from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.envs import make_env
from normrl.utils.errors import TrainingDiverged

ROOT = pathlib.Path(__file__).resolve().parents[2]
# 2 envs x 16 steps per rollout, 2 minibatches x 2 epochs: 4 updates per rollout
PPO_CFG = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=2, monitor_every=0)
DQN_CFG = DQNConfig(learning_starts=16, batch_size=8, buffer_size=64, train_freq=2, log_interval=1000, monitor_every=0)


def _ppo(**kw):
    return PPO(make_env("CartPole-v1", 2, "cpu", seed=0), PPOConfig(**{**PPO_CFG.__dict__, **kw}))


def _dqn(**kw):
    return DQN(make_env("CartPole-v1", 2, "cpu", seed=0), DQNConfig(**{**DQN_CFG.__dict__, **kw}))


def _poison(monkeypatch, module, name, calls, value=float("inf"), on_call=None):
    """Make ``module.name``'s loss ``value`` on the given (1-based) calls."""
    original = getattr(module, name)
    count = [0]

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        count[0] += 1
        if count[0] in calls:
            if on_call is not None:
                on_call(count[0])
            if isinstance(out, tuple):
                return (out[0] * value,) + out[1:]
            return out * value
        return out

    monkeypatch.setattr(module, name, poisoned)
    return count


def _finite(agent):
    return all(torch.isfinite(t).all() for net in agent.networks() for t in net.state_dict().values() if t.is_floating_point())


def test_ppo_stops_at_the_rollout_naming_update_step_and_parameter(monkeypatch):
    agent = _ppo()
    _poison(monkeypatch, ppo_module, "ppo_loss", {6})  # the second update of the second rollout
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(32 * 5, progress=False)
    facts = exc.value.facts
    expected = next(n for n, p in agent.network.named_parameters() if not torch.isfinite(p).all())
    assert facts == {"env_step": 64, "update": 6, "cause": "loss or gradient norm", "parameter": f"network.{expected}"}
    assert agent.num_steps == 64  # stopped after that rollout, not at the end of learn
    assert str(exc.value) == ("training diverged at env step 64 (update 6): non-finite loss or gradient norm; "
                              f"first non-finite parameter: network.{expected}")


def test_dqn_stops_at_the_end_of_learn_naming_the_update_and_its_env_step(monkeypatch):
    agent = _dqn()
    seen = {}
    _poison(monkeypatch, dqn_module, "td_loss", {5}, value=float("nan"), on_call=lambda k: seen.setdefault(k, agent.num_steps))
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(64, progress=False)  # log_interval 1000: the check at the end of learn finds it
    assert exc.value.facts["update"] == 5 and exc.value.facts["env_step"] == seen[5] == 16 + 2 * 4
    assert exc.value.facts["parameter"].startswith("q_network.")


def test_dqn_catches_a_non_finite_gradient_under_a_finite_loss():
    """DQN does not clip by default, so the guard checks the gradients itself."""
    agent = _dqn()
    calls = [0]

    def poison(grad):
        calls[0] += 1
        return grad * float("nan") if calls[0] == 3 else grad

    list(agent.q_network.parameters())[-1].register_hook(poison)
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(64, progress=False)
    assert exc.value.facts["update"] == 3 and exc.value.facts["cause"] == "loss or gradient norm"


def test_a_non_finite_parameter_alone_is_named(monkeypatch):
    agent = _dqn().learn(32, progress=False)
    name, param = list(agent.q_network.named_parameters())[-1]
    with torch.no_grad():
        param.view(-1)[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=f"non-finite parameters; first non-finite parameter: q_network.{name}$"):
        agent._check_divergence()


def test_huge_but_finite_parameters_are_not_called_non_finite(tmp_path):
    """The fast check is an L2 norm, which overflows for values near 1e19 and above; a
    finite tensor must still pass (the exact elementwise check rules it out)."""
    agent = _dqn().learn(32, progress=False)
    with torch.no_grad():
        next(agent.q_network.parameters()).fill_(1e30)
    agent._check_divergence()
    agent.save(tmp_path / "huge.pt")


def test_checkpoints_of_non_finite_agents_are_never_written(tmp_path):
    agent = _ppo().learn(32, progress=False)
    agent.save(tmp_path / "good.pt")
    with torch.no_grad():
        next(agent.network.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="bad.pt: not written: parameter network.* is non-finite"):
        agent.save(tmp_path / "bad.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pt"]


def _step(agent, scale):
    obs = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    logits, value = agent.network(obs)
    agent._optimizer_step((logits.square().mean() + value.square().mean()) * scale)


@pytest.mark.parametrize("fused, norm", [(True, "none"), (False, "none"), (True, "nap")])
def test_skip_update_skips_exactly_the_non_finite_steps(fused, norm):
    agent = _ppo(on_divergence="skip-update", fused_adam=fused, norm=norm, schedule_horizon=1000)
    _step(agent, 1.0)
    params = [p.detach().clone() for p in agent.network.parameters()]
    moments = [s["exp_avg"].clone() for s in agent.optimizer.state.values()]
    for bad in (float("nan"), float("inf")):
        _step(agent, bad)
    agent._check_divergence()  # nothing left non-finite: no error
    after = list(agent.network.parameters())
    if norm == "nap":  # the projection still runs on the unchanged weights: equal up to rounding
        assert all(torch.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in zip(after, params))
    else:
        assert all(torch.equal(a, b) for a, b in zip(after, params))
    assert all(torch.equal(s["exp_avg"], m) for s, m in zip(agent.optimizer.state.values(), moments))
    assert agent.divergence.skipped_updates == 2 and agent.num_updates == 3
    _step(agent, 1.0)  # a finite update still trains
    assert not all(torch.equal(a, b) for a, b in zip(agent.network.parameters(), params))
    assert agent.summary()["skipped_updates"] == 2


def test_stop_mode_applies_then_reports_a_non_finite_step():
    agent = _ppo(schedule_horizon=1000)
    _step(agent, 1.0)
    _step(agent, float("nan"))
    with pytest.raises(TrainingDiverged, match=r"at env step 0 \(update 2\)"):
        agent._check_divergence()


def test_skip_update_training_run_finishes_with_the_count(monkeypatch, tmp_path):
    from normrl.runs import train_single

    _poison(monkeypatch, ppo_module, "ppo_loss", {3, 7, 8}, value=float("nan"))
    summary = train_single("ppo", "CartPole-v1", 128, tmp_path / "run", config=PPO_CFG,
                           overrides={"num_envs": 2, "on_divergence": "skip-update"}, progress=False)
    assert summary["status"] == "finished" and summary["skipped_updates"] == 3 and summary["updates"] == 16


def test_train_single_keeps_the_last_finite_checkpoint_and_records_the_divergence(monkeypatch, tmp_path):
    from normrl.runs import train_single
    from normrl.runs.checkpoints import load_latest

    logdir = tmp_path / "run"
    _poison(monkeypatch, ppo_module, "ppo_loss", {14})  # the second update of the fourth rollout (env step 128)
    with pytest.raises(TrainingDiverged) as exc:
        train_single("ppo", "CartPole-v1", 320, logdir, config=PPO_CFG, overrides={"num_envs": 2}, checkpoint_every=64,
                     progress_every=32, progress=False)
    folder, _ = load_latest(logdir)
    assert folder.name == "step_000000000064"  # 128 diverged: its checkpoint was never written
    assert str(exc.value).endswith(f"; last good checkpoint: {folder}")
    summary = json.loads((logdir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["finished"] is False
    assert summary["divergence"] == {"env_step": 128, "update": 14, "cause": "loss or gradient norm",
                                     "parameter": exc.value.facts["parameter"], "last_checkpoint": str(folder)}
    restored = PPO.from_checkpoint(folder / "agent.pt")
    assert restored.num_steps == 64 and _finite(restored)
    from normrl.runs.status import DIVERGED, run_status

    assert run_status(logdir) == DIVERGED


def test_train_stream_records_the_divergence(monkeypatch, tmp_path):
    from normrl.runs import train_stream

    _poison(monkeypatch, dqn_module, "td_loss", {40})
    with pytest.raises(TrainingDiverged, match="last good checkpoint: .*step_000000000048"):
        train_stream("permuted-obs:CartPole-v1:2", "dqn", 96, tmp_path, device="cpu", eval_episodes=1,
                     checkpoint_every=48, config=DQN_CFG, overrides={"num_envs": 2}, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["divergence"]["update"] == 40


def test_cli_reports_a_diverging_run_in_one_line_with_status_1(tmp_path):
    """The issue's command: lr 1e30 on CartPole is caught at the first rollout, before
    the plasticity monitor's eigensolver ever sees the NaN features."""
    logdir = tmp_path / "x"
    proc = subprocess.run([sys.executable, "-m", "normrl.cli", "train", "--algo", "ppo", "--env", "CartPole-v1", "--steps",
                           "20000", "--learning-rate", "1e30", "--monitor-every", "1", "--logdir", str(logdir),
                           "--no-progress", "--threads", "1"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("normrl train: error: training diverged at env step ")
    assert "first non-finite parameter: network." in lines[0] and f"no checkpoint was written in {logdir} yet" in lines[0]
    summary = json.loads((logdir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["divergence"]["last_checkpoint"] is None
    assert not (logdir / "checkpoints").exists()


def test_monitor_logs_nan_instead_of_failing_on_non_finite_features():
    from normrl.metrics import PlasticityMonitor

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    monitor = PlasticityMonitor(net, every=1, probe=torch.randn(16, 4))
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")  # layer "3" gets NaN features, layer "1" stays finite
    out = monitor.after_update(1)
    for metric in ("srank", "effective_rank", "stable_rank", "dormant_ratio", "feature_norm"):
        assert torch.isnan(torch.tensor(out[f"plasticity/{metric}/3"])), metric
        assert not torch.isnan(torch.tensor(out[f"plasticity/{metric}/1"])), metric
    assert torch.isnan(torch.tensor(out["plasticity/srank/all"]))
