"""save mid-run + load into a fresh agent + continue == uninterrupted run (CPU, bitwise)."""
import pytest
import torch

from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.envs import make_env
from normrl.utils.errors import CheckpointError

from .helpers import SmallActorCritic, small_mlp

PPO_CFG = PPOConfig(seed=3, num_steps=16, num_minibatches=2, update_epochs=2, schedule_horizon=256, monitor_every=0)
DQN_CFG = DQNConfig(seed=3, buffer_size=200, learning_starts=40, train_freq=4, gradient_steps=2, target_update_interval=24,
                    exploration_steps=100, batch_size=16, n_step=3, monitor_every=0)


def _ppo(seed=3):
    env = make_env("CartPole-v1", 4, "cpu", seed=seed)
    torch.manual_seed(0)  # injected networks are initialized by the caller
    return PPO(env, PPO_CFG, network=SmallActorCritic(4, 2))


def _dqn(seed=3, tau=1.0):
    env = make_env("CartPole-v1", 4, "cpu", seed=seed)
    cfg = DQNConfig(**{**DQN_CFG.__dict__, "tau": tau})
    torch.manual_seed(0)
    return DQN(env, cfg, network=small_mlp(4, 2))


def _params(agent):
    return [t.clone() for net in agent.networks() for t in net.state_dict().values()]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_ppo_resume_is_bitwise_identical(tmp_path):
    full = _ppo().learn(128, progress=False)
    half = _ppo().learn(64, progress=False)
    half.save(tmp_path / "ppo.pt")
    torch.manual_seed(12345)  # the checkpoint restores the global RNG too
    resumed = _ppo(seed=99).load(tmp_path / "ppo.pt")
    assert resumed.num_steps == 64 and resumed.num_updates == half.num_updates
    resumed.learn(64, progress=False)
    assert resumed.num_steps == full.num_steps == 128
    assert _same(_params(resumed), _params(full))
    assert resumed.lr_schedule.t == full.lr_schedule.t
    assert torch.equal(resumed.optimizer.state_dict()["state"][0]["exp_avg"], full.optimizer.state_dict()["state"][0]["exp_avg"])
    # and training actually changed the parameters
    assert not _same(_params(_ppo()), _params(full))


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_dqn_resume_is_bitwise_identical(tmp_path, tau):
    full = _dqn(tau=tau).learn(160, progress=False)
    half = _dqn(tau=tau).learn(80, progress=False)
    half.save(tmp_path / "dqn.pt")
    resumed = _dqn(seed=99, tau=tau).load(tmp_path / "dqn.pt")
    assert len(resumed.replay_buffer) == len(half.replay_buffer) == 80
    resumed.learn(80, progress=False)
    assert resumed.num_updates == full.num_updates > 0
    assert _same(_params(resumed), _params(full))


def test_dqn_checkpoint_without_replay(tmp_path):
    cfg = DQNConfig(**{**DQN_CFG.__dict__, "save_replay": False})
    agent = DQN(make_env("CartPole-v1", 4, "cpu", seed=0), cfg, network=small_mlp(4, 2)).learn(40, progress=False)
    agent.save(tmp_path / "small.pt")
    other = DQN(make_env("CartPole-v1", 4, "cpu", seed=0), cfg, network=small_mlp(4, 2)).load(tmp_path / "small.pt")
    assert len(other.replay_buffer) == 0 and other.num_steps == 40


def test_load_errors(tmp_path):
    agent = _ppo()
    with pytest.raises(FileNotFoundError):
        agent.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        agent.load(tmp_path / "junk.pt")
    _dqn().save(tmp_path / "dqn.pt")
    with pytest.raises(CheckpointError, match="'dqn', not 'ppo'"):
        agent.load(tmp_path / "dqn.pt")


@pytest.mark.parametrize("algo, norm", [("ppo", "nap"), ("dqn", "nap"), ("dqn", "layernorm")])
def test_default_networks_resume_bitwise_with_norms(tmp_path, algo, norm):
    """Default networks with a norm; NaP wraps the optimizer in a ProjectedOptimizer whose
    projector state travels with the checkpoint."""
    def make():
        env = make_env("CartPole-v1", 4, "cpu", seed=5)
        if algo == "ppo":
            return PPO(env, PPOConfig(**{**PPO_CFG.__dict__, "norm": norm}))
        return DQN(env, DQNConfig(**{**DQN_CFG.__dict__, "norm": norm}))

    full = make().learn(128 if algo == "ppo" else 160, progress=False)
    half = make().learn(64 if algo == "ppo" else 80, progress=False)
    if norm == "nap":
        assert type(half.optimizer).__name__ == "ProjectedOptimizer"
        # value/Q heads stay free (a projected head would bound their range)
        assert half.optimizer.projector.output == "free" and half.optimizer.projector.output_layer_names == []
    half.save(tmp_path / "ck.pt")
    resumed = make().load(tmp_path / "ck.pt").learn(64 if algo == "ppo" else 80, progress=False)
    assert _same(_params(resumed), _params(full))
    if norm == "nap":  # hidden weights kept at their initial norms
        proj = resumed.optimizer.projector
        for now, init in zip(proj.weight_norms().values(), proj.initial_weight_norms().values()):
            assert torch.allclose(now, init, rtol=1e-5)


def test_from_checkpoint_rebuilds_a_default_agent(tmp_path):
    cfg = PPOConfig(seed=2, num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1, hidden=(8, 8), norm="layernorm", monitor_every=0)
    agent = PPO(make_env("CartPole-v1", 4, "cpu", seed=2), cfg).learn(64, progress=False)
    agent.save(tmp_path / "ck.pt")
    restored = PPO.from_checkpoint(tmp_path / "ck.pt")
    assert restored.config == agent.config and restored.config.hidden == (8, 8)
    assert restored.env.spec_id == "CartPole-v1" and restored.env.num_envs == 4 and restored.num_steps == 64
    assert _same(_params(restored), _params(agent))
    assert _same(_params(restored.learn(32, progress=False)), _params(agent.learn(32, progress=False)))
    with pytest.raises(CheckpointError):
        DQN.from_checkpoint(tmp_path / "ck.pt")
