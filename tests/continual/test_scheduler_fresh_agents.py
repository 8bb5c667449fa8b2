"""TaskScheduler's fresh-agent oracle (``agent_factory``): a new agent per visit, started
as on a first task, with the stream's step axis kept by ``step_offset``; and
``eval_tasks="current"``, the diagonal-only evaluation a plasticity study needs."""
import pytest

from normrl.continual import TaskScheduler
from tests.continual.test_scheduler import FakeAgent, _tasks


class Factory:
    """Builds a FakeAgent per call and records the arguments."""

    def __init__(self):
        self.calls, self.agents = [], []

    def __call__(self, visit, env, step_offset):
        self.calls.append((visit, env.label, env.seed, step_offset))
        agent = FakeAgent()
        self.agents.append(agent)
        return agent


def test_every_visit_trains_a_new_agent_from_the_factory():
    factory = Factory()
    sched = TaskScheduler(_tasks(), cycles=2, seed=7, eval_episodes=1, agent_factory=factory)
    result = sched.run()
    assert sched.fresh_agents and result.completed
    # one agent per visit, built on that visit's env (label and seed = scheduler seed + visit)
    assert [(v, label, seed) for v, label, seed, _ in factory.calls] == [
        (0, "a", 7), (1, "b", 8), (2, "c", 9), (3, "a", 10), (4, "b", 11), (5, "c", 12)]
    # each agent trained exactly one visit, on its own task, starting from its own step 0
    assert [a.learned for a in factory.agents] == [[("a", 4, 0)], [("b", 6, 1)], [("c", 5, 2)],
                                                   [("a", 4, 0)], [("b", 6, 1)], [("c", 5, 2)]]
    assert [a.num_steps for a in factory.agents] == [4, 6, 5, 4, 6, 5]
    # the step axis continues along the stream: offsets are the previous rows' steps
    assert [o for *_, o in factory.calls] == [0, 4, 10, 15, 19, 25]
    assert result.eval_steps == [4, 10, 15, 19, 25, 30]


def test_a_fresh_agent_starts_as_on_a_first_task():
    """Start hooks and the task tag only; no end hooks from the previous agent reach it and
    the switch options (optimizer reset, LR restart, replay flush) have nothing to act on."""
    factory = Factory()
    sched = TaskScheduler(_tasks(), seed=0, eval_episodes=1, reset_optimizer=True, restart_lr=True,
                          flush_replay=True, agent_factory=factory)
    sched.run()
    for visit, agent in enumerate(factory.agents):
        hooks = [e for e in agent.events if e[0] in ("start", "end")]
        assert hooks == [("start", visit), ("end", visit)]
        assert agent.replay_buffer.clears == 0
        assert agent.lr_schedule.t == agent.num_steps  # the schedule was never restarted
        assert agent.task_id == visit


def test_evaluation_after_a_visit_is_the_visits_own_agent():
    factory = Factory()
    sched = TaskScheduler(_tasks(), seed=0, eval_episodes=1, agent_factory=factory)
    result = sched.run()
    # FakeAgent.evaluate returns 10 * its own steps + task index: the agent of visit v
    # trained only that visit's steps
    assert result.returns[2] == [50.0, 51.0, 52.0]
    assert result.returns[1][:2] == [60.0, 61.0]


def test_resume_mid_visit_uses_the_given_agent_then_builds_new_ones():
    factory = Factory()
    first = TaskScheduler(_tasks(), seed=0, eval_episodes=1, chunk_steps=2, agent_factory=factory)
    first.run(callback=lambda s, a: not (s.visit == 1 and s.steps_done == 2))
    state = first.state_dict()
    assert state["fresh_agents"] is True and (state["visit"], state["steps_done"]) == (1, 2)
    restored = factory.agents[-1]
    factory2 = Factory()
    second = TaskScheduler(_tasks(), seed=0, eval_episodes=1, chunk_steps=2, agent_factory=factory2)
    second.load_state_dict(state)
    assert second.step_offset == 4
    with pytest.raises(ValueError, match="needs the agent"):
        second.run()
    result = second.run(restored)
    assert [c[0] for c in factory2.calls] == [2]  # only visit 2 is new
    assert restored.num_steps == 6
    assert result.eval_steps == [4, 10, 15]


def test_state_of_one_mode_is_refused_by_the_other():
    plain = TaskScheduler(_tasks(), eval_episodes=1)
    fresh = TaskScheduler(_tasks(), eval_episodes=1, agent_factory=Factory())
    with pytest.raises(ValueError, match="fresh agents"):
        plain.load_state_dict(fresh.state_dict())
    with pytest.raises(ValueError, match="one agent"):
        fresh.load_state_dict(plain.state_dict())
    legacy = plain.state_dict()
    del legacy["fresh_agents"]  # states saved before the oracle existed: one agent
    plain.load_state_dict(legacy)
    with pytest.raises(ValueError, match="callable"):
        TaskScheduler(_tasks(), agent_factory=3)
    with pytest.raises(ValueError, match="needs the agent"):
        plain.run()


def test_without_a_factory_nothing_changes():
    agent = FakeAgent()
    sched = TaskScheduler(_tasks(), seed=0, eval_episodes=1)
    result = sched.run(agent)
    assert not sched.fresh_agents and sched.step_offset == 0
    assert result.eval_steps == [4, 10, 15]
    assert agent.learned == [("a", 4, 0), ("b", 6, 1), ("c", 5, 2)]


def test_eval_tasks_current_evaluates_only_the_visits_task():
    import math

    agent = FakeAgent()
    sched = TaskScheduler(_tasks(), cycles=2, seed=0, eval_episodes=1, eval_tasks="current")
    result = sched.run(agent)
    assert [e[1] for e in agent.events if e[0] == "eval"] == ["a", "b", "c", "a", "b", "c"]
    for row, task in zip(result.returns, result.visit_tasks):
        assert [k for k, v in enumerate(row) if not math.isnan(v)] == [task]
    assert result.returns[4][1] == 10.0 * 25 + 1
    with pytest.raises(ValueError, match="seen, current"):
        TaskScheduler(_tasks(), eval_tasks="all")
