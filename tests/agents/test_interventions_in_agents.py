"""Plasticity interventions inside PPO and DQN: config and CLI, the penalty in the loss,
after_step after every update, task hooks through the scheduler, TensorBoard tags,
structural changes (DQN's target network), and bit-exact save/load/continue."""
import json

import pytest
import torch

from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.cli import main
from normrl.continual import TaskScheduler, stream_tasks
from normrl.envs import make_env
from normrl.utils.errors import CheckpointError

SPECS = ("redo:tau=0.1,every=4", "l2_init:lam=0.01", "shrink_perturb:shrink=0.999,perturb=0.001")


def _ppo(interventions=SPECS, seed=3, **kw):
    cfg = PPOConfig(seed=seed, num_steps=16, num_minibatches=2, update_epochs=2, schedule_horizon=512, monitor_every=0,
                    hidden=(16, 16), interventions=interventions, **kw)
    return PPO(make_env("CartPole-v1", 4, "cpu", seed=seed), cfg)


def _dqn(interventions=SPECS, seed=3, **kw):
    cfg = DQNConfig(seed=seed, buffer_size=200, learning_starts=32, train_freq=4, gradient_steps=1, target_update_interval=32,
                    exploration_steps=100, batch_size=16, monitor_every=0, hidden=(16, 16), interventions=interventions, **kw)
    return DQN(make_env("CartPole-v1", 4, "cpu", seed=seed), cfg)


def _params(agent):
    return [t.clone() for net in agent.networks() for t in net.state_dict().values()]


def test_bad_specs_are_config_errors_naming_the_valid_choices():
    with pytest.raises(ValueError, match="valid names.*redo"):
        PPOConfig(interventions=("nosuch",)).validate()
    with pytest.raises(ValueError, match="valid options.*tau"):
        DQNConfig(interventions=("redo:tua=0.1",)).validate()
    with pytest.raises(ValueError, match="tuple of spec strings"):
        PPOConfig(interventions="redo").validate()


@pytest.mark.parametrize("make", [_ppo, _dqn])
def test_the_penalty_enters_the_loss_and_after_step_runs_every_update(make, monkeypatch):
    agent = make(interventions=("l2_init:lam=100",))
    calls = []
    real = type(agent.interventions).after_step
    monkeypatch.setattr(type(agent.interventions), "after_step", lambda self, step: (calls.append(step), real(self, step)))
    agent.learn(128, progress=False)
    assert calls == list(range(1, agent.num_updates + 1)) and agent.num_updates > 0
    # l2_init pulls towards θ₀: with a huge λ the parameters stay much closer to it than without (Adam
    # then oscillates within about one step size of θ₀)
    start = make(interventions=())
    pulled = sum((p - q).pow(2).sum() for p, q in zip(agent._trained.parameters(), start._trained.parameters()))
    free = make(interventions=()).learn(128, progress=False)
    drift = sum((p - q).pow(2).sum() for p, q in zip(free._trained.parameters(), start._trained.parameters()))
    assert pulled < 0.5 * drift


@pytest.mark.parametrize("make", [_ppo, _dqn])
def test_resume_with_interventions_is_bitwise_identical(make, tmp_path):
    full = make().learn(256, progress=False)  # PPO: whole rollouts of 4 envs x 16 steps
    half = make().learn(128, progress=False)
    half.save(tmp_path / "a.pt")
    resumed = make()
    resumed.load(tmp_path / "a.pt")
    resumed.learn(128, progress=False)
    a, b = _params(full), _params(resumed)
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    assert full.interventions.state_dict().keys() == resumed.interventions.state_dict().keys()
    with pytest.raises(CheckpointError, match="interventions"):
        make(interventions=()).load(tmp_path / "a.pt")


def test_events_and_penalties_reach_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = PPOConfig(seed=0, num_steps=16, num_minibatches=2, update_epochs=2, monitor_every=0, hidden=(16, 16),
                    interventions=("redo:tau=0.5,every=2", "l2_init:lam=0.01"))
    agent = PPO(make_env("CartPole-v1", 4, "cpu", seed=0), cfg, logdir=tmp_path)
    agent.learn(128, progress=False)
    agent.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert "plasticity/penalty/l2_init" in tags
    assert any(t.startswith("plasticity/redo/reset_units/") for t in tags), sorted(tags)


def test_dqn_injection_at_a_task_switch_keeps_outputs_and_rebuilds_the_target(tmp_path):
    agent = _dqn(interventions=("plasticity_injection",))
    sched = TaskScheduler(stream_tasks("permuted-obs:CartPole-v1:2", 64), num_envs=4, eval_episodes=1, seed=3)
    obs = torch.randn(5, 4)
    seen = {}
    real = agent._on_structure_change

    def record():
        before = agent.target_network(obs)
        real()
        seen["target_before"], seen["target_after"] = before, agent.target_network(obs)
        seen["online"] = agent.q_network(obs)

    agent._on_structure_change = record
    sched.run(agent)
    assert seen, "the injection at the second task's start never happened"
    # the target now mirrors the injected online network, which computes what it did before
    torch.testing.assert_close(seen["target_after"], seen["online"])
    assert type(agent.target_network[1][-1]).__name__ == "InjectedHead"
    agent.save(tmp_path / "inj.pt")
    restored = _dqn(interventions=("plasticity_injection",))
    restored.load(tmp_path / "inj.pt")  # the injected structure is re-created before the weights load
    torch.testing.assert_close(restored.q_network(obs), agent.q_network(obs))


def test_cli_intervention_flag_lands_in_config_json_and_bad_names_are_one_line(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert main(["train", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "256", "--num-envs", "4", "--num-steps", "16",
                 "--intervention", "redo:tau=0.1,every=8", "--intervention", "l2_init:lam=1e-4", "--monitor-every", "0",
                 "--logdir", str(logdir), "--no-progress"]) == 0
    config = json.loads((logdir / "config.json").read_text())["config"]
    assert config["interventions"] == ["redo:tau=0.1,every=8", "l2_init:lam=1e-4"]
    with pytest.raises(SystemExit) as exc:
        main(["train", "--algo", "dqn", "--env", "CartPole-v1", "--steps", "10", "--intervention", "redoo",
              "--logdir", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "redo" in err


@pytest.mark.slow
@pytest.mark.parametrize("specs", [("redo:tau=0.1,every=1000",), ("l2_init:lam=1e-4",)])
def test_ppo_with_an_intervention_still_solves_cartpole(specs):
    from normrl.agents.presets import preset_config

    from .test_learning import train_until

    cfg = preset_config("ppo", "CartPole-v1", seed=0, schedule_horizon=200_000, monitor_every=0, interventions=specs)
    agent = PPO(make_env("CartPole-v1", cfg.num_envs, "cpu", seed=0), cfg)
    assert train_until(agent, 475.0, 200_000, 8192) >= 475.0


@pytest.mark.slow
@pytest.mark.parametrize("specs", [("redo:tau=0.1,every=1000",), ("l2_init:lam=1e-4",)])
def test_dqn_with_an_intervention_still_learns_cartpole(specs):
    from .test_learning import _dqn as learning_dqn, train_until

    agent = learning_dqn(1, interventions=specs)
    assert train_until(agent, 400.0, 150_000, 5000) >= 400.0


def test_the_scheduler_task_hooks_reach_the_agents_interventions(monkeypatch):
    agent = _ppo(interventions=("reset_layers:at=task_end",))
    calls = []
    compose = type(agent.interventions)
    for hook in ("on_task_start", "on_task_end"):
        real = getattr(compose, hook)
        monkeypatch.setattr(compose, hook, lambda self, t, hook=hook, real=real: (calls.append((hook, t)), real(self, t)))
    sched = TaskScheduler(stream_tasks("permuted-obs:CartPole-v1:2", 64), num_envs=4, eval_episodes=1, seed=3)
    sched.run(agent)
    assert calls == [("on_task_start", 0), ("on_task_end", 0), ("on_task_start", 1), ("on_task_end", 1)]
    assert any(k.startswith("reset_layers/") for k in agent._intervention_events)
