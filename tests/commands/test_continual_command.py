"""``normrl continual``: a real PPO run on a permuted CartPole stream, killed with
SIGTERM mid-stream and resumed, matches an uninterrupted run; checkpoints are never
silently overwritten; bad checkpoints give one-line errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from normrl.cli import main

STREAM = "permuted-obs:CartPole-v1:2"
STEPS = 2048


def _argv(logdir, *extra):
    return ["continual", "--stream", STREAM, "--algo", "ppo", "--steps-per-task", str(STEPS), "--cycles", "2",
            "--logdir", str(logdir), "--checkpoint-every", "512", "--eval-episodes", "4", "--device", "cpu",
            "--no-progress", *extra]


def _summary(logdir):
    return json.loads((Path(logdir) / "summary.json").read_text())


def _tb_steps(logdir):
    """{tag: sorted steps} of every scalar in the run's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: sorted(e.step for e in acc.Scalars(tag)) for tag in acc.Tags()["scalars"]}


def _assert_same_tensorboard_steps(resumed, full):
    """A resumed run's TensorBoard scalars sit at exactly the uninterrupted run's steps:
    nothing duplicated, nothing missing."""
    got, want = _tb_steps(resumed), _tb_steps(full)
    assert sorted(got) == sorted(want)
    for tag in want:
        assert got[tag] == want[tag], tag


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("full")
    assert main(_argv(logdir)) == 0
    return logdir


@pytest.mark.slow
def test_sigterm_then_resume_matches_uninterrupted_run(uninterrupted, tmp_path):
    logdir = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "normrl.cli", *_argv(logdir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    latest = logdir / "checkpoints" / "latest.json"
    deadline = time.time() + 60
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert "continue with --resume" in out
    stopped_at = json.loads(latest.read_text())["num_steps"]
    assert 0 < stopped_at < 4 * STEPS
    partial = _summary(logdir)["continual"]
    assert not partial["completed"]

    assert main(_argv(logdir, "--resume")) == 0
    full, resumed = _summary(uninterrupted)["continual"], _summary(logdir)["continual"]
    assert resumed["completed"] and resumed["visit_tasks"] == full["visit_tasks"] == [0, 1, 0, 1]
    assert resumed["eval_steps"] == full["eval_steps"]
    assert resumed["eval_steps"][-1] == 4 * STEPS
    assert resumed["returns"] == full["returns"]  # bit-exact continuation
    assert _summary(logdir)["agent"]["steps"] == 4 * STEPS
    _assert_same_tensorboard_steps(logdir, uninterrupted)
    # only the newest checkpoint is kept
    assert [p.name for p in (logdir / "checkpoints").glob("step_*")] == [f"step_{4 * STEPS:012d}"]


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [(1, 1024), (1, STEPS), (2, 0)], ids=["mid-visit", "before-eval", "visit-boundary"])
def test_sigint_at_each_kind_of_checkpoint_then_resume_is_exact(uninterrupted, tmp_path, monkeypatch, stop_at):
    """SIGINT delivered right after the checkpoint at (visit, steps_done): mid-visit, after
    a visit's training but before its evaluation, and between visits."""
    import normrl.runs.stream as stream_module

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
    logdir = tmp_path / "run"
    assert main(_argv(logdir)) == 130 and fired
    monkeypatch.setattr(stream_module, "save_checkpoint", real_save)
    assert main(_argv(logdir, "--resume")) == 0
    assert _summary(logdir)["continual"] == _summary(uninterrupted)["continual"]
    _assert_same_tensorboard_steps(logdir, uninterrupted)


@pytest.mark.slow
def test_sigint_during_evaluation_stops_it_and_the_resumed_run_is_exact(uninterrupted, tmp_path, monkeypatch):
    """A signal during a visit's evaluation interrupts it (not waited for): the
    checkpoint is the trained, ended visit without its row, and the resumed run
    evaluates the row once, with the same matrix and TensorBoard steps as a run never
    interrupted and without calling the task-end hooks twice."""
    from normrl.agents.common.base import AgentBase
    from normrl.continual import scheduler as scheduler_module

    real_evaluate = AgentBase.evaluate
    calls, stopped = [], []

    def evaluate_then_interrupt(self, env, episodes=10, **kw):
        calls.append(1)
        if len(calls) == 2:  # visit 1's first task: the signal arrives mid-evaluation
            os.kill(os.getpid(), signal.SIGINT)
        try:
            return real_evaluate(self, env, episodes, **kw)
        except Exception as exc:
            stopped.append(type(exc).__name__)
            raise

    real_notify = scheduler_module.notify_task_switch
    ends = []

    def counting_notify(modules, old, new):
        if old is not None and new is None:
            ends.append(old)
        return real_notify(modules, old, new)

    monkeypatch.setattr(AgentBase, "evaluate", evaluate_then_interrupt)
    monkeypatch.setattr(scheduler_module, "notify_task_switch", counting_notify)
    logdir = tmp_path / "run"
    assert main(_argv(logdir)) == 130
    assert stopped == ["EvaluationInterrupted"]  # stopped inside agent.evaluate
    state = json.loads(next((logdir / "checkpoints").glob("step_*/run_state.json")).read_text())["scheduler"]
    assert (state["visit"], state["steps_done"], state["started"], state["task_ended"]) == (1, STEPS, True, True)
    assert len(state["returns"]) == 1
    assert main(_argv(logdir, "--resume")) == 0
    assert ends == [0, 1, 0, 1]  # one end-of-task call per visit across both processes' halves
    assert _summary(logdir)["continual"] == _summary(uninterrupted)["continual"]
    _assert_same_tensorboard_steps(logdir, uninterrupted)


@pytest.mark.slow
def test_existing_run_is_refused_and_complete_run_resumes_to_a_no_op(uninterrupted, capsys):
    with pytest.raises(SystemExit) as exc:
        main(_argv(uninterrupted))
    assert exc.value.code == 2
    assert "already holds a run's checkpoints" in capsys.readouterr().err
    assert main(_argv(uninterrupted, "--resume")) == 0
    assert "already complete" in capsys.readouterr().out


@pytest.mark.slow
def test_bad_checkpoints_give_clear_errors(uninterrupted, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(_argv(tmp_path / "empty", "--resume"))
    assert "no checkpoint" in capsys.readouterr().err

    # options that differ from the saved run
    with pytest.raises(SystemExit):
        main([*_argv(uninterrupted, "--resume"), "--reset-optimizer"])
    assert "options differ" in capsys.readouterr().err

    # an agent config flag that differs from the saved run
    with pytest.raises(SystemExit):
        main([*_argv(uninterrupted, "--resume"), "--learning-rate", "0.1"])
    err = capsys.readouterr().err
    assert "agent config differs" in err and "learning_rate: saved 0.001, now 0.1" in err  # CartPole PPO preset

    # a corrupt pointer file
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(uninterrupted, broken)
    (broken / "checkpoints" / "latest.json").write_text("{not json")
    with pytest.raises(SystemExit):
        main(_argv(broken, "--resume"))
    assert "corrupt checkpoint" in capsys.readouterr().err


def test_argument_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(_argv(tmp_path / "x", "--cycles", "0"))
    assert "--cycles must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*_argv(tmp_path / "y"), "--norm", "no-such-norm"])
    assert "unknown norm" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*_argv(tmp_path / "v"), "--buffer-size", "100"])
    assert "--buffer-size is not a ppo option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_argv(tmp_path / "w", "--eval-epsilon", "2"))
    assert "--eval-epsilon must be in [0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["continual", "--stream", "nope", "--algo", "ppo", "--steps-per-task", "10", "--logdir", str(tmp_path / "z")])
    assert "valid streams" in capsys.readouterr().err


def test_agent_config_flags_reach_the_agent_and_config_json(tmp_path):
    logdir = tmp_path / "dqn"
    argv = ["continual", "--stream", STREAM, "--algo", "dqn", "--steps-per-task", "256", "--logdir", str(logdir),
            "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--num-envs", "4",
            "--learning-rate", "0.0007", "--buffer-size", "512", "--learning-starts", "64", "--hidden", "32", "16",
            "--no-double-dqn", "--eval-epsilon", "0.25"]
    assert main(argv) == 0
    assert json.loads((logdir / "config.json").read_text())["continual"]["eval_epsilon"] == 0.25
    summary = _summary(logdir)
    assert summary["train_seconds"] > 0 and summary["eval_seconds"] > 0
    config = json.loads((logdir / "config.json").read_text())["config"]
    assert (config["learning_rate"], config["buffer_size"], config["learning_starts"]) == (0.0007, 512, 64)
    assert config["hidden"] == [32, 16] and config["double_dqn"] is False and config["num_envs"] == 4
    import torch

    ckpt = next((logdir / "checkpoints").glob("step_*/agent.pt"))
    state = torch.load(ckpt, weights_only=True)
    assert state["config"]["learning_rate"] == 0.0007 and tuple(state["config"]["hidden"]) == (32, 16)
