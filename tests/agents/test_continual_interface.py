"""The agents under normrl.envs.TaskScheduler: task ids reach the stored transitions,
set_env keeps training going, evaluation fills the return matrix."""
import math

import pytest
import torch

from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.envs import make_env
from normrl.continual import Task, TaskScheduler

from .helpers import ChainEnv, PositionValueNet


def test_dqn_under_task_scheduler_tags_transitions_with_task_ids():
    cfg = DQNConfig(hidden=(16,), buffer_size=1024, learning_starts=64, train_freq=8, batch_size=16, monitor_every=0, log_interval=64)
    agent = DQN(make_env("CartPole-v1", 4, "cpu", seed=0), cfg)
    tasks = [Task("CartPole-v1", 96, name="a"), Task("CartPole-v1", 96, name="b")]
    result = TaskScheduler(tasks, num_envs=4, eval_episodes=4, learn_kwargs={"progress": False}).run(agent)
    assert result.completed and agent.num_steps == 192 and agent.task_id == 1
    m = result.matrix
    assert m.shape == (2, 2) and math.isnan(m[0, 1]) and (m[1] > 0).all() and m[0, 0] > 0
    rb = agent.replay_buffer
    ids = rb.task_ids[: rb.num_rows]
    assert (ids[:24] == 0).all() and (ids[24:48] == 1).all()  # 96 steps / 4 envs = 24 rows per task
    assert rb.dones[23].all()  # n-step returns never span the switch


def test_ppo_set_env_and_evaluate():
    cfg = PPOConfig(num_steps=8, num_minibatches=2, update_epochs=1, hidden=(16,), monitor_every=0)
    agent = PPO(make_env("CartPole-v1", 4, "cpu", seed=0), cfg).learn(32, progress=False)
    agent.task_id = 3
    agent.set_env(make_env("CartPole-v1", 4, "cpu", seed=1))
    agent.learn(32, progress=False)
    assert agent.num_steps == 64 and (agent.buffer.task_ids == 3).all()
    with pytest.raises(ValueError, match="same num_envs"):
        agent.set_env(make_env("CartPole-v1", 2, "cpu"))
    with pytest.raises(ValueError, match="same spaces"):
        agent.set_env(make_env("MinAtar/Breakout", 4, "cpu"))


def test_evaluate_counts_episodes_evenly():
    # Sub-env i's episodes last i + 1 steps and return i + 1. Counting the first 8
    # finished episodes would over-weight sub-env 0 (it finishes every step); spreading
    # them 2 per sub-env gives the mean over sub-envs, 2.5.
    cfg = PPOConfig(num_steps=4, num_minibatches=1, update_epochs=1, monitor_every=0)
    agent = PPO(ChainEnv(num_envs=2), cfg, network=PositionValueNet())
    assert agent.evaluate(ChainEnv(num_envs=4, length=[1, 2, 3, 4]), episodes=8) == 2.5
    # 6 episodes over 4 sub-envs: quotas 2, 2, 1, 1 -> (1+1+2+2+3+4) / 6
    assert agent.evaluate(ChainEnv(num_envs=4, length=[1, 2, 3, 4]), episodes=6) == pytest.approx(13 / 6)
    with pytest.raises(ValueError, match="episodes"):
        agent.evaluate(ChainEnv(num_envs=4), episodes=0)


def test_evaluate_polls_should_stop_every_16_steps_and_restores_train_mode():
    from normrl.utils.errors import EvaluationInterrupted

    cfg = PPOConfig(num_steps=8, num_minibatches=2, update_epochs=1, hidden=(16,), monitor_every=0)
    agent = PPO(make_env("CartPole-v1", 2, "cpu", seed=0), cfg)
    polls = []

    def stop_on_second_poll():
        polls.append(1)
        return len(polls) == 2

    with pytest.raises(EvaluationInterrupted, match="after 32 steps"):
        agent.evaluate(make_env("CartPole-v1", 2, "cpu", seed=1), episodes=1000, should_stop=stop_on_second_poll)
    assert len(polls) == 2
    assert all(m.training for m in agent.networks())
    # the quota check comes first: an evaluation whose episodes are all in is not interrupted
    chain = PPO(ChainEnv(num_envs=2), PPOConfig(num_steps=4, num_minibatches=1, update_epochs=1, monitor_every=0),
                network=PositionValueNet())
    assert chain.evaluate(ChainEnv(num_envs=4, length=[1, 2, 3, 4]), episodes=8, should_stop=lambda: True) == 2.5


def test_epsilon_evaluation_has_the_closed_form_mean_and_its_own_generator():
    from .helpers import StopOnActionEnv

    cfg = PPOConfig(num_steps=4, num_minibatches=1, update_epochs=1, monitor_every=0)
    agent = PPO(ChainEnv(num_envs=2), cfg, network=PositionValueNet())
    gen_state, global_state = agent.generator.get_state(), torch.get_rng_state()
    # greedy action 0 never ends an episode; ε = 0.5 ends each step with probability 1/4: mean 4
    ret = agent.evaluate(StopOnActionEnv(num_envs=1000), episodes=1000, epsilon=0.5, epsilon_seed=1)
    assert abs(ret - 4.0) < 0.5  # the mean of 1000 geometric(1/4) returns has std 0.11
    assert agent.evaluate(StopOnActionEnv(num_envs=1000), episodes=1000, epsilon=0.5, epsilon_seed=1) == ret
    assert agent.evaluate(StopOnActionEnv(num_envs=1000), episodes=1000, epsilon=0.5, epsilon_seed=2) != ret
    assert agent.evaluate(StopOnActionEnv(num_envs=8), episodes=8, epsilon=1.0, seed=3) == pytest.approx(
        agent.evaluate(StopOnActionEnv(num_envs=8), episodes=8, epsilon=1.0, epsilon_seed=3))  # seed is the default
    assert torch.equal(agent.generator.get_state(), gen_state) and torch.equal(torch.get_rng_state(), global_state)
    with pytest.raises(ValueError, match="did not finish"):  # greedy: the episodes never end
        agent.evaluate(StopOnActionEnv(num_envs=2), episodes=2, max_steps=100)
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match="epsilon"):
            agent.evaluate(StopOnActionEnv(num_envs=2), episodes=2, epsilon=bad)


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_evaluation_in_blocks_equals_step_by_step(epsilon):
    """CartPole runs evaluation blocks through its functional view; an opaque wrapper
    forces one env.step call per step: the same episodes, the same mean."""
    from normrl.envs.wrappers import TensorEnvWrapper

    class Opaque(TensorEnvWrapper):
        def step(self, actions):
            return self.env.step(actions)

    cfg = PPOConfig(num_steps=8, num_minibatches=2, update_epochs=1, hidden=(16,), monitor_every=0)
    agent = PPO(make_env("CartPole-v1", 4, "cpu", seed=0), cfg).learn(64, progress=False)
    blocked = agent.evaluate(make_env("CartPole-v1", 6, "cpu", seed=5), episodes=9, epsilon=epsilon)
    stepped = agent.evaluate(Opaque(make_env("CartPole-v1", 6, "cpu", seed=5)), episodes=9, epsilon=epsilon)
    assert blocked == stepped > 0
