"""``train_stream(..., fresh_agent=True)``, the plasticity oracle: every visit starts
from a freshly built agent with that visit's seed, visit 0 is the continual run's visit
0, the step axis continues along the stream, and a stopped run resumes exactly."""
import dataclasses
import json
import os
import signal

import pytest
import torch

import normrl.runs.stream as stream_module
from normrl.agents import PPO
from normrl.agents.presets import preset_config
from normrl.envs import make_env
from normrl.runs import train_stream, visit_agent_seed
from normrl.utils.errors import CheckpointError, UserError

STREAM = "permuted-obs:CartPole-v1:3"
STEPS = 128
OVERRIDES = {"num_envs": 4, "num_steps": 16, "update_epochs": 2, "monitor_every": 0, "seed": 5,
             "lr_schedule": "constant"}


def _run(logdir, **kw):
    return train_stream(STREAM, "ppo", STEPS, logdir, overrides=OVERRIDES, device="cpu", eval_episodes=2,
                        env_kwargs={"max_episode_steps": 50},
                        checkpoint_every=64, progress=False, **kw)


def _params(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory):
    """An uninterrupted oracle run, recording every agent's parameters when built."""
    built = []

    class RecordingPPO(PPO):
        def __init__(self, env, config=None, **kw):
            super().__init__(env, config, **kw)
            built.append((config.seed, _params(self.network)))

    mp = pytest.MonkeyPatch()
    mp.setattr(stream_module, "agent_class", lambda algo: RecordingPPO)
    try:
        logdir = tmp_path_factory.mktemp("fresh")
        summary = _run(logdir, fresh_agent=True)
    finally:
        mp.undo()
    return logdir, summary, built


def test_each_visit_starts_from_a_freshly_built_agent_with_its_seed(fresh_run):
    _, summary, built = fresh_run
    assert [seed for seed, _ in built] == [visit_agent_seed(5, v) for v in range(3)]
    assert built[0][0] == 5  # visit 0 keeps the run's seed
    assert len({seed for seed, _ in built}) == 3
    for visit, (seed, params) in enumerate(built):
        config = dataclasses.replace(preset_config("ppo", "CartPole-v1", **OVERRIDES), seed=seed)
        reference = PPO(make_env("CartPole-v1", num_envs=4, seed=123), config)
        want = _params(reference.network)
        assert params.keys() == want.keys()
        for name in want:
            assert torch.equal(params[name], want[name]), (visit, name)
    # and the three starts differ from one another (new draws, not one init reused)
    first_weight = next(k for k in built[0][1] if k.endswith("weight"))
    assert not torch.equal(built[0][1][first_weight], built[1][1][first_weight])
    assert summary["fresh_agent"] is True
    assert summary["agent"]["steps"] == STEPS  # the last agent trained one visit only


def test_visit_zero_is_the_continual_runs_and_steps_continue(fresh_run, tmp_path):
    logdir, summary, _ = fresh_run
    plain = _run(tmp_path / "plain")
    fresh = summary["continual"]
    assert fresh["completed"] and fresh["eval_steps"] == plain["continual"]["eval_steps"] == [128, 256, 384]
    assert fresh["returns"][0] == plain["continual"]["returns"][0]  # same agent, same data for visit 0
    assert plain["fresh_agent"] is False
    options = json.loads((logdir / "config.json").read_text())["continual"]
    assert options["fresh_agent"] is True
    from normrl.analysis.results import read_scalars

    steps = [s for s, _ in read_scalars(logdir, ("charts/episode_return",))["charts/episode_return"]]
    assert max(steps) == 384 and any(128 < s <= 256 for s in steps) and any(256 < s for s in steps)


@pytest.mark.parametrize("stop_at", [(1, 64), (2, 0)], ids=["mid-visit", "visit-boundary"])
def test_stopped_oracle_resumes_exactly(fresh_run, tmp_path, monkeypatch, stop_at):
    real_save = stream_module.save_checkpoint
    fired = []

    def save_then_interrupt(logdir, agent, state):
        path = real_save(logdir, agent, state)
        sched = state["scheduler"]
        if not fired and (sched["visit"], sched["steps_done"]) == stop_at:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return path

    monkeypatch.setattr(stream_module, "save_checkpoint", save_then_interrupt)
    stopped = _run(tmp_path / "run", fresh_agent=True)
    assert fired and stopped["signal"] == signal.SIGINT and not stopped["continual"]["completed"]
    monkeypatch.setattr(stream_module, "save_checkpoint", real_save)
    resumed = _run(tmp_path / "run", fresh_agent=True, resume=True)
    assert resumed["continual"] == fresh_run[1]["continual"]


def test_bad_combinations_are_refused(fresh_run, tmp_path):
    with pytest.raises(UserError, match="do not apply"):
        _run(tmp_path / "a", fresh_agent=True, reset_optimizer=True)
    with pytest.raises(UserError, match="do not apply"):
        _run(tmp_path / "b", fresh_agent=True, restart_lr="yes")
    with pytest.raises(UserError, match="True or False"):
        _run(tmp_path / "c", fresh_agent="yes")
    with pytest.raises(CheckpointError, match="fresh_agent"):
        _run(fresh_run[0], resume=True)  # an oracle run resumed as a continual one


def test_eval_tasks_is_checked_on_resume(fresh_run):
    with pytest.raises(CheckpointError, match="eval_tasks"):
        _run(fresh_run[0], resume=True, fresh_agent=True, eval_tasks="current")
    with pytest.raises(UserError, match="eval_tasks"):
        _run(fresh_run[0], fresh_agent=True, eval_tasks="diagonal")
