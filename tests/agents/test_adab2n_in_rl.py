"""AdaB²N inside the agents: every training forward gets the minibatch's per-sample task
ids (from the replay buffer / rollout), and the auxiliary loss is added when asked."""
import torch

from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.envs import make_env
from normrl.normalization.layers.adab2n import AdaB2N

CFG = DQNConfig(norm="adab2n", hidden=(16, 16), buffer_size=512, learning_starts=64, train_freq=8, batch_size=32,
                monitor_every=0, log_interval=64, seed=1)


def _record_ids(monkeypatch):
    seen = []
    original = AdaB2N.set_batch_task_ids

    def spy(self, task_ids):
        seen.append(task_ids.clone())
        original(self, task_ids)

    monkeypatch.setattr(AdaB2N, "set_batch_task_ids", spy)
    return seen


def test_dqn_passes_replay_task_ids_to_adab2n(monkeypatch):
    seen = _record_ids(monkeypatch)
    agent = DQN(make_env("CartPole-v1", 4, "cpu", seed=0), CFG)
    layers = [m for m in agent.q_network.modules() if isinstance(m, AdaB2N)]
    assert len(layers) == 2
    agent.learn(128, progress=False)
    assert seen and all((ids == 0).all() for ids in seen)
    seen.clear()
    agent.task_id = 3
    before = agent.num_updates
    agent.learn(128, progress=False)
    ids = torch.cat(seen)
    # every update sets the ids once per layer per training forward (next_obs and obs)
    assert len(seen) == 2 * len(layers) * (agent.num_updates - before)
    assert set(ids.unique().tolist()) == {0, 3}
    rb = agent.replay_buffer
    assert set(rb.task_ids[: rb.num_rows].unique().tolist()) == {0, 3}


def test_ppo_passes_rollout_task_ids_to_adab2n(monkeypatch):
    seen = _record_ids(monkeypatch)
    cfg = PPOConfig(norm="adab2n", num_steps=8, num_minibatches=2, update_epochs=1, hidden=(16,), monitor_every=0)
    agent = PPO(make_env("CartPole-v1", 4, "cpu", seed=0), cfg)
    agent.task_id = 5
    agent.learn(32, progress=False)
    assert seen and all((ids == 5).all() and ids.shape == (16,) for ids in seen)


def test_aux_loss_coefficient_changes_training():
    def params(coef):
        agent = DQN(make_env("CartPole-v1", 4, "cpu", seed=0), DQNConfig(**{**CFG.__dict__, "aux_loss_coef": coef}))
        agent.learn(160, progress=False)
        return torch.cat([p.detach().flatten() for p in agent.q_network.parameters()])

    a, b, c = params(0.0), params(0.0), params(10.0)
    assert torch.equal(a, b)
    assert torch.isfinite(c).all() and not torch.equal(a, c)
