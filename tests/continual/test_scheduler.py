"""TaskScheduler with a fake agent and a tiny TensorEnv: order, hooks, switch options,
the return matrix, TensorBoard tags, summary.json and exact resumption."""
import json
import math

import gymnasium as gym
import pytest
import torch
from torch import nn

from normrl.continual import ContinualResult, Task, TaskScheduler, apply_task_switch, notify_task_switch, stream_tasks
from normrl.envs.base import TensorEnv
from normrl.normalization import make_lr_schedule


class TinyEnv(TensorEnv):
    """A 1-step TensorEnv that only remembers which task and seed built it."""

    def __init__(self, label, num_envs, device, seed):
        self.label, self.num_envs, self.device, self.seed = label, num_envs, torch.device(device), seed
        self.single_observation_space = gym.spaces.Box(-1, 1, (2,))
        self.single_action_space = gym.spaces.Discrete(2)
        self.closed = False

    def close(self):
        self.closed = True


class TinySource:
    """A dataset-style task source: ``make`` builds a TinyEnv."""

    def __init__(self, label):
        self.label = label
        self.name = label
        self.made = []

    def make(self, num_envs, device, seed):
        env = TinyEnv(self.label, num_envs, device, seed)
        self.made.append(env)
        return env


class HookRecorder(nn.Module):
    def __init__(self, events):
        super().__init__()
        self.events = events

    def forward(self, x):
        return x

    def on_task_start(self, task_id):
        self.events.append(("start", task_id))

    def on_task_end(self, task_id):
        self.events.append(("end", task_id))


class FakeBuffer:
    def __init__(self):
        self.items, self.clears = [], 0

    def clear(self):
        self.items, self.clears = [], self.clears + 1


class FakeAgent:
    """Duck-typed agent: records every call; evaluate() returns a known number."""

    def __init__(self, events=None):
        self.events = [] if events is None else events
        self.net = nn.Sequential(nn.Linear(2, 2), HookRecorder(self.events))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=0.1)
        self.lr_schedule = make_lr_schedule("cosine", base_lr=0.1, total_steps=100)
        self.replay_buffer = FakeBuffer()
        self.task_id = 0
        self.num_steps = 0
        self.env = None
        self.writer = None
        self.optimizer_state_at_set_env = []
        self.learned = []  # (label, steps, task_id)
        self.eval_task_ids = []

    def networks(self):
        return [self.net]

    def set_env(self, env):
        self.env = env
        self.optimizer_state_at_set_env.append(len(self.optimizer.state))
        self.events.append(("set_env", env.label, env.seed))

    def learn(self, steps):
        loss = self.net(torch.ones(1, 2)).sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.lr_schedule.t += steps
        self.replay_buffer.items.extend([self.task_id] * steps)
        self.learned.append((self.env.label, steps, self.task_id))
        self.num_steps += steps

    def evaluate(self, env, episodes):
        self.events.append(("eval", env.label))
        self.eval_task_ids.append(self.task_id)
        # a known value: 10 * env steps trained so far + evaluated task index
        return 10.0 * self.num_steps + "abc".index(env.label)


def _tasks(steps=(4, 6, 5)):
    return [Task(TinySource(label), s) for label, s in zip("abc", steps)]


def test_task_order_seeds_and_ids_over_cycles():
    sched = TaskScheduler(_tasks(), cycles=2, seed=10, eval_episodes=1)
    agent = FakeAgent()
    result = sched.run(agent)
    set_envs = [e for e in agent.events if e[0] == "set_env"]
    assert [e[1] for e in set_envs] == list("abcabc")
    assert [e[2] for e in set_envs] == [10, 11, 12, 13, 14, 15]  # seed + visit
    assert [(lab, s, t) for lab, s, t in agent.learned] == [
        ("a", 4, 0), ("b", 6, 1), ("c", 5, 2), ("a", 4, 0), ("b", 6, 1), ("c", 5, 2)]
    assert agent.num_steps == sched.total_steps() == 30
    assert result.visit_tasks == [0, 1, 2, 0, 1, 2] and result.completed
    # every training and evaluation env was closed
    assert all(env.closed for t in sched.tasks for env in t.source.made)


def test_hooks_and_evaluations_in_order():
    sched = TaskScheduler(_tasks(), cycles=1, eval_episodes=1)
    agent = FakeAgent()
    sched.run(agent)
    flow = [e for e in agent.events if e[0] != "set_env"]
    assert flow == [
        ("start", 0),
        ("end", 0), ("eval", "a"),
        ("start", 1),
        ("end", 1), ("eval", "a"), ("eval", "b"),
        ("start", 2),
        ("end", 2), ("eval", "a"), ("eval", "b"), ("eval", "c"),
    ]
    # each evaluation ran with the evaluated task's id; training kept its own id
    assert agent.eval_task_ids == [0, 0, 1, 0, 1, 2]
    assert agent.task_id == 2


def test_matrix_shape_lower_triangular_then_full():
    sched = TaskScheduler(_tasks(), cycles=2, eval_episodes=3)
    result = sched.run(FakeAgent())
    m = result.matrix
    assert m.shape == (6, 3)
    for v in range(3):
        for k in range(3):
            assert math.isnan(m[v, k]) == (k > v)
    assert not torch.isnan(m[3:]).any()
    # evaluate() returned 10 * steps so far + task index
    assert result.eval_steps == [4, 10, 15, 19, 25, 30]
    expected = torch.tensor([[10.0 * s + k for k in range(3)] for s in result.eval_steps], dtype=torch.float64)
    mask = ~torch.isnan(m)
    assert torch.equal(m[mask], expected[mask])
    assert result.final_returns() == [300.0, 301.0, 302.0]
    d = result.to_dict()
    assert d["returns"][0] == [40.0, None, None]
    assert "trained \\ eval" in result.format_table()


def test_switch_options_do_what_they_say():
    # defaults: optimizer state kept, buffer kept, schedule's own hook decides (no restart)
    agent = FakeAgent()
    TaskScheduler(_tasks(), eval_episodes=0).run(agent)
    assert agent.optimizer_state_at_set_env == [0, 2, 2]  # Linear weight+bias keep Adam state
    assert agent.replay_buffer.clears == 0 and agent.replay_buffer.items == [0] * 4 + [1] * 6 + [2] * 5
    assert agent.lr_schedule.num_restarts == 0 and agent.lr_schedule.t == 15

    agent = FakeAgent()
    TaskScheduler(_tasks(), eval_episodes=0, reset_optimizer=True, restart_lr=True, flush_replay=True).run(agent)
    assert agent.optimizer_state_at_set_env == [0, 0, 0]
    assert agent.replay_buffer.clears == 2  # switches only, not the first task
    assert agent.replay_buffer.items == [2] * 5
    assert agent.lr_schedule.num_restarts == 2 and agent.lr_schedule.t == 5

    # restart_lr=None defers to a schedule built to restart on task switches
    agent = FakeAgent()
    agent.lr_schedule = make_lr_schedule("cosine", base_lr=0.1, total_steps=100, restart_on_task_switch=True)
    TaskScheduler(_tasks(), eval_episodes=0).run(agent)
    assert agent.lr_schedule.num_restarts == 2
    agent = FakeAgent()
    agent.lr_schedule = make_lr_schedule("cosine", base_lr=0.1, total_steps=100, restart_on_task_switch=True)
    TaskScheduler(_tasks(), eval_episodes=0, restart_lr=False).run(agent)
    assert agent.lr_schedule.num_restarts == 0

    # no tagging: task_id stays what the agent had
    agent = FakeAgent()
    TaskScheduler(_tasks(), eval_episodes=1, tag_task_id=False).run(agent)
    assert {t for _, _, t in agent.learned} == {0} and agent.eval_task_ids == [0] * 6


def test_notify_task_switch_calls_each_module_once():
    events = []
    shared = HookRecorder(events)
    a = nn.Sequential(nn.Linear(1, 1), shared)
    b = nn.Sequential(shared, nn.ReLU())
    assert notify_task_switch([a, b], 3, 4) == 2
    assert events == [("end", 3), ("start", 4)]
    assert notify_task_switch([a], None, 5) == 1 and events[-1] == ("start", 5)
    assert notify_task_switch([nn.Linear(1, 1)], 0, 1) == 0


def test_apply_task_switch_first_task_touches_nothing_but_hooks_and_tag():
    agent = FakeAgent()
    agent.set_env(TinyEnv("a", 1, "cpu", 0))
    agent.learn(3)
    apply_task_switch(agent, None, 7, reset_optimizer_state=True, restart_lr=True, flush_replay=True)
    assert len(agent.optimizer.state) == 2 and agent.replay_buffer.clears == 0
    assert agent.lr_schedule.num_restarts == 0 and agent.task_id == 7
    assert agent.events[-1] == ("start", 7)


def _snapshot(agent):
    return {"num_steps": agent.num_steps, "learned": list(agent.learned), "events": list(agent.events)}


def _restore(snapshot):
    agent = FakeAgent(events=list(snapshot["events"]))
    agent.num_steps = snapshot["num_steps"]
    agent.learned = list(snapshot["learned"])
    return agent


@pytest.mark.parametrize("stop_after_calls", [1, 2, 3, 5, 7])
def test_state_round_trip_resumes_at_the_same_position(stop_after_calls):
    """Stop after N callbacks, save (JSON round trip), resume into a fresh scheduler and
    agent: the learn calls, hooks and matrix equal those of an uninterrupted run."""
    def make():
        return TaskScheduler(_tasks((4, 6, 5)), cycles=2, eval_episodes=1, chunk_steps=3, seed=1)

    full_agent = FakeAgent()
    full = make().run(full_agent)

    calls = {"n": 0}
    saved = {}

    def checkpoint(sched, agent):
        calls["n"] += 1
        saved["sched"] = json.loads(json.dumps(sched.state_dict()))
        saved["agent"] = _snapshot(agent)
        return calls["n"] < stop_after_calls

    first = make()
    partial = first.run(FakeAgent(), callback=checkpoint)
    assert not partial.completed
    resumed_sched = make()
    resumed_sched.load_state_dict(saved["sched"])
    assert resumed_sched.steps_completed() == saved["agent"]["num_steps"]
    agent = _restore(saved["agent"])
    result = resumed_sched.run(agent)
    assert result.completed
    assert agent.learned == full_agent.learned
    assert [e for e in agent.events if e[0] != "set_env"] == [e for e in full_agent.events if e[0] != "set_env"]
    assert torch.equal(torch.nan_to_num(result.matrix, -1.0), torch.nan_to_num(full.matrix, -1.0))
    assert agent.num_steps == 30


def test_load_state_dict_rejects_other_streams_and_garbage():
    sched = TaskScheduler(_tasks(), cycles=2)
    state = sched.state_dict()
    with pytest.raises(ValueError, match="another stream"):
        TaskScheduler(_tasks(), cycles=3).load_state_dict(state)
    with pytest.raises(ValueError, match="another stream"):
        TaskScheduler(_tasks((4, 6, 9)), cycles=2).load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        sched.load_state_dict({"version": 1})
    bad = dict(state, visit=2)
    with pytest.raises(ValueError, match="inconsistent"):
        sched.load_state_dict(bad)


def test_tensorboard_tags_and_summary_json(tmp_path):
    from torch.utils.tensorboard import SummaryWriter
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    agent = FakeAgent()
    agent.writer = SummaryWriter(str(tmp_path / "tb"))
    sched = TaskScheduler(_tasks(), cycles=1, eval_episodes=1, logdir=str(tmp_path))
    sched.run(agent)
    agent.writer.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"continual/eval/a", "continual/eval/b", "continual/eval/c", "continual/task_id", "continual/eval_mean_seen"} <= tags
    a = [(e.step, e.value) for e in acc.Scalars("continual/eval/a")]
    assert a == [(4, 40.0), (10, 100.0), (15, 150.0)]
    task_ids = [(e.step, e.value) for e in acc.Scalars("continual/task_id")]
    assert task_ids == [(0, 0.0), (4, 0.0), (4, 1.0), (10, 1.0), (10, 2.0), (15, 2.0)]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["continual"]["returns"][2] == [150.0, 151.0, 152.0]
    assert summary["continual"]["task_names"] == ["a", "b", "c"] and summary["continual"]["completed"]


def test_agent_without_progress_raises():
    class Stuck(FakeAgent):
        def learn(self, steps):
            pass

    with pytest.raises(RuntimeError, match="no progress"):
        TaskScheduler(_tasks(), eval_episodes=0).run(Stuck())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="non-empty"):
        TaskScheduler([])
    with pytest.raises(ValueError, match="cycles"):
        TaskScheduler(_tasks(), cycles=0)
    with pytest.raises(ValueError, match="distinct"):
        TaskScheduler([Task(TinySource("a"), 1), Task(TinySource("a"), 1)])
    with pytest.raises(ValueError, match="positive int"):
        Task("CartPole-v1", 0)
    with pytest.raises(ValueError, match="env id string"):
        Task(3.5, 10)


def test_unknown_stream_name_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        stream_tasks("no-such-stream", 10)
    message = str(excinfo.value)
    for name in ("minatar", "atari-default", "atari-<Game1>", "permuted-obs:", "permuted-digits"):
        assert name in message


def test_catalogue_cartpole_stream_runs_end_to_end():
    """A real TensorEnv stream (permuted CartPole observations) through the scheduler."""

    class RandomAgent(FakeAgent):
        def set_env(self, env):
            self.env = env
            self.obs = env.reset()

        def learn(self, steps):
            for _ in range(steps):
                self.obs, *_ = self.env.step(torch.zeros(self.env.num_envs, dtype=torch.int64))
            self.num_steps += steps

        def evaluate(self, env, episodes):
            env.reset()
            done_returns = []
            while len(done_returns) < episodes:
                _, _, _, _, info = env.step(torch.zeros(env.num_envs, dtype=torch.int64))
                done_returns += info["episode_return"][info["done"]].tolist()
            return sum(done_returns[:episodes]) / episodes

    sched = TaskScheduler(stream_tasks("permuted-obs:CartPole-v1:2", 20), cycles=1, num_envs=2, eval_episodes=2, seed=0)
    result = sched.run(RandomAgent())
    assert result.matrix.shape == (2, 2)
    # always pushing left ends CartPole in about 8-10 steps, whatever the permutation
    assert 5 <= result.returns[1][0] <= 15 and 5 <= result.returns[1][1] <= 15
    assert isinstance(result, ContinualResult)


def test_make_visit_env_is_used_without_set_env_when_the_agent_already_has_it():
    sched = TaskScheduler(_tasks(), cycles=1, seed=4, eval_episodes=0)
    sched.load_state_dict(dict(sched.state_dict(), visit=1, steps_done=3, started=True,
                               returns=[[1.0, None, None]], eval_steps=[4]))
    env = sched.make_visit_env()
    assert (env.label, env.seed) == ("b", 5)
    agent = FakeAgent()
    agent.env = env
    agent.num_steps = 7
    sched.run(agent, env=env)
    assert [e[1] for e in agent.events if e[0] == "set_env"] == ["c"]  # not called again for b
    assert agent.learned[0] == ("b", 3, 1)  # the rest of visit 1
    assert env.closed
    done = TaskScheduler(_tasks(), eval_episodes=0)
    done.run(FakeAgent())
    with pytest.raises(ValueError, match="finished"):
        done.make_visit_env()


def test_evaluation_runs_every_episode_at_once_and_passes_eval_epsilon():
    made = []

    class EpsilonAgent(FakeAgent):
        def evaluate(self, env, episodes, epsilon=0.0, epsilon_seed=None):
            made.append((env.num_envs, episodes, epsilon, epsilon_seed))
            return 0.0

    tasks = [Task(TinySource(label), 2, seed=s) for label, s in zip("ab", (5, None))]
    TaskScheduler(tasks, seed=100, eval_episodes=12).run(EpsilonAgent())
    assert made == [(12, 12, 0.0, None), (12, 12, 0.0, None), (12, 12, 0.0, None)]  # one sub-env per episode, greedy
    made.clear()
    TaskScheduler(tasks, seed=100, eval_episodes=3, eval_num_envs=2, eval_epsilon=0.05).run(EpsilonAgent())
    # the generator seed of a task's evaluation is its evaluation seed: the same draws after every visit
    assert made == [(2, 3, 0.05, 5 + 1_000_003), (2, 3, 0.05, 5 + 1_000_003), (2, 3, 0.05, 100 + 1_000_003 + 1)]
    with pytest.raises(ValueError, match="needs agent.evaluate"):
        TaskScheduler(tasks, eval_episodes=1, eval_epsilon=0.1).run(FakeAgent())
    for bad in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="eval_epsilon"):
            TaskScheduler(tasks, eval_epsilon=bad)
