"""AdaB²N in reinforcement learning: DQN with an AdaB²N torso on the sequential MinAtar
stream; the replay buffer's per-transition task ids reach the layers and their batch
statistics are weighted per task."""
import pytest
import torch

from normrl.agents import DQN, DQNConfig
from normrl.envs import make_env
from normrl.continual import TaskScheduler, stream_tasks
from normrl.normalization.layers.adab2n import AdaB2N


@pytest.mark.slow
def test_dqn_on_the_minatar_stream_feeds_replay_task_ids_to_adab2n():
    tasks = stream_tasks("minatar", 160)[:2]
    cfg = DQNConfig(norm="adab2n", hidden=(16,), buffer_size=2048, learning_starts=64, train_freq=8, batch_size=32, monitor_every=0, log_interval=10_000)
    agent = DQN(make_env(tasks[0].env_id, 4, "cpu", seed=0, **tasks[0].env_kwargs), cfg)
    layers = [m for m in agent.q_network.modules() if isinstance(m, AdaB2N)]
    assert layers, "the DQN torso is built with AdaB2N layers"
    calls = []

    def capture(mod, inp):
        if mod.training and mod.task_ids is not None:
            ids = mod.task_ids.clone()
            calls.append((ids, mod.sample_weights(ids).detach(), int(mod.current_task)))

    layers[0].register_forward_pre_hook(capture)
    TaskScheduler(tasks, num_envs=4, eval_episodes=0, learn_kwargs={"progress": False}).run(agent)
    assert all(int(m.current_task) == 1 for m in layers)  # the scheduler's task hooks ran
    assert calls, "training forwards received task ids"
    first_ids, _, first_task = calls[0]
    assert first_task == 0 and (first_ids == 0).all() and first_ids.shape == (32,)
    mixed = [(ids, w) for ids, w, task in calls if task == 1 and (ids == 0).any() and (ids == 1).any()]
    assert mixed, "minibatches of the second task mix task-0 and task-1 transitions"
    ids, w = mixed[-1]
    theta = layers[0].task_logits.detach()
    n = torch.bincount(ids, minlength=2).float()
    pi = (theta[:2].exp() + n[:2]) / (theta[:2].exp() + n[:2]).sum()
    # Each task's total weight is its Dirichlet posterior mean, not its share of the batch.
    torch.testing.assert_close(torch.stack([w[ids == 0].sum(), w[ids == 1].sum()]), pi)
    torch.testing.assert_close(w[ids == 0], torch.full(((ids == 0).sum().item(),), pi[0].item() / n[0].item()))
    # Acting forwards between updates do not reuse a minibatch's ids.
    assert all(m.task_ids is None for m in layers)
