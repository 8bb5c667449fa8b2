"""Checkpoints cannot run code: a pickle that would execute a command is refused before
it runs (by the loader, ``from_checkpoint``, ``load`` and ``normrl continual --resume``),
old plain checkpoints still load, pickled objects need ``trusted=True``, and every file
normrl writes loads with ``torch.load(weights_only=True)``."""
import errno
import json
import os
import pathlib
import shlex
import subprocess
import sys
import warnings

import pytest
import torch

from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.envs import make_env
from normrl.utils.checkpoint_io import check_plain, load_plain, save_plain
from normrl.utils.errors import CheckpointError

ROOT = pathlib.Path(__file__).resolve().parents[2]
PPO_CFG = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1, monitor_every=0)


class _RunsCommand:
    """Unpickles to ``os.system(command)``: what a malicious checkpoint would hold."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _evil_checkpoint(path, marker, algo="ppo"):
    """A file shaped like a normrl agent checkpoint whose pickle runs ``touch marker``."""
    torch.save({"version": 2, "algo": algo, "config": {}, "payload": _RunsCommand(f"touch {shlex.quote(str(marker))}")}, path)
    return path


def _ppo(**kw):
    return PPO(make_env("CartPole-v1", 2, "cpu", seed=0), PPOConfig(**{**PPO_CFG.__dict__, **kw}))


def _one_line_refusal(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg and str(path) in msg
    assert "posix.system" in msg or "os.system" in msg or "nt.system" in msg  # the offending global is named
    assert "--trust-checkpoint" in msg and "trusted=True" in msg


def test_loader_from_checkpoint_and_load_refuse_a_code_running_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError) as exc:
        load_plain(evil)
    _one_line_refusal(exc, evil)
    with pytest.raises(CheckpointError) as exc:
        PPO.from_checkpoint(evil)
    _one_line_refusal(exc, evil)
    agent = _ppo()
    with pytest.raises(CheckpointError) as exc:
        agent.load(evil)
    _one_line_refusal(exc, evil)
    assert not marker.exists()
    # the same file with trusted=True does run its pickle (so the refusal above is what protected us)
    with pytest.warns(UserWarning, match="evil.pt: loading with full unpickling.*can run arbitrary code"):
        load_plain(evil, trusted=True)
    assert marker.exists()


def test_continual_resume_refuses_a_code_running_agent_file(tmp_path, monkeypatch):
    """``normrl continual --resume`` on an interrupted run whose agent.pt was swapped for a
    malicious one: exit status 2, one line naming the file and the flag, nothing ran."""
    import signal

    import normrl.runs.stream as stream

    logdir, marker = tmp_path / "run", tmp_path / "pwned"
    argv = ["continual", "--stream", "permuted-obs:CartPole-v1:2", "--algo", "ppo", "--steps-per-task", "32",
            "--num-envs", "2", "--num-steps", "16", "--eval-episodes", "1", "--checkpoint-every", "32",
            "--device", "cpu", "--no-progress", "--logdir", str(logdir)]
    from normrl.cli import main

    real_save = stream.save_checkpoint

    def save_then_interrupt(*args, **kwargs):  # a SIGINT after the first checkpoint: a resumable run
        path = real_save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return path

    monkeypatch.setattr(stream, "save_checkpoint", save_then_interrupt)
    assert main(argv) == 130
    latest = json.loads((logdir / "checkpoints" / "latest.json").read_text())["checkpoint"]
    agent_file = logdir / "checkpoints" / latest / "agent.pt"
    _evil_checkpoint(agent_file, marker)
    proc = subprocess.run([sys.executable, "-m", "normrl.cli", *argv, "--resume"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("normrl continual: error: ") and str(agent_file) in lines[0] and "--trust-checkpoint" in lines[0]
    assert not marker.exists()


def test_version_1_plain_checkpoint_loads_and_pickled_objects_need_trust(tmp_path):
    agent = _ppo().learn(64, progress=False)
    state = torch.load(agent.save(tmp_path / "a.pt"), weights_only=True)
    assert state["version"] == 2
    # a 0.1.0 file (version 1, same plain content) loads through the safe loader
    torch.save({**state, "version": 1}, tmp_path / "v1.pt")
    restored = _ppo(seed=5).load(tmp_path / "v1.pt")
    assert all(torch.equal(a, b) for a, b in zip(restored.network.state_dict().values(), agent.network.state_dict().values()))
    # a file holding a pickled object (here a PosixPath) is refused, loads with trusted=True and a warning
    torch.save({**state, "version": 1, "note": pathlib.PurePosixPath("/x")}, tmp_path / "objects.pt")
    with pytest.raises(CheckpointError, match="objects.pt: refused to load.*PurePosixPath"):
        _ppo().load(tmp_path / "objects.pt")
    with pytest.warns(UserWarning, match=r"objects\.pt: loading with full unpickling"):
        trusted = PPO.from_checkpoint(tmp_path / "objects.pt", trusted=True)
    assert trusted.num_steps == agent.num_steps == 64


def test_corrupt_and_foreign_files_are_one_line_errors(tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    good = _ppo().save(tmp_path / "good.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    for name in ("text.pt", "cut.pt"):
        with pytest.raises(CheckpointError, match="not a readable checkpoint") as exc:
            _ppo().load(tmp_path / name)
        assert "\n" not in str(exc.value) and "trust" not in str(exc.value)
    with pytest.raises(FileNotFoundError):
        load_plain(tmp_path / "missing.pt")


def test_save_plain_rejects_objects_and_is_atomic_on_a_full_disk(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match=r"\['cfg'\] is a pathlib"):
        check_plain({"cfg": pathlib.Path("x")})
    path = save_plain({"a": torch.ones(2)}, tmp_path / "c.pt")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError):
        save_plain({"a": torch.zeros(2)}, path)
    assert torch.equal(load_plain(path)["a"], torch.ones(2))  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # and no temporary file is left


def _roundtrip(agent, path):
    """Every value of the saved file loads with weights_only=True and restores a fresh agent."""
    state = torch.load(agent.save(path), weights_only=True)
    check_plain(state)
    return state


@pytest.mark.parametrize("algo, env_id, extra", [
    ("ppo", "CartPole-v1", {}),
    ("ppo", "CartPole-v1", {"norm": "nap", "monitor_every": 1}),
    ("dqn", "CartPole-v1", {}),
    ("ppo", "MinAtar/Breakout", {}),
    ("dqn", "MinAtar/Seaquest", {"norm": "layernorm", "monitor_every": 1}),
])
def test_every_agent_checkpoint_loads_with_weights_only(tmp_path, algo, env_id, extra):
    env = make_env(env_id, 2, "cpu", seed=0)
    if algo == "ppo":
        agent = PPO(env, PPOConfig(**{**PPO_CFG.__dict__, **extra}), logdir=tmp_path)
    else:
        agent = DQN(env, DQNConfig(learning_starts=16, batch_size=8, buffer_size=64, train_freq=2, **extra), logdir=tmp_path)
    agent.learn(64, progress=False)
    state = _roundtrip(agent, tmp_path / "a.pt")
    assert state["env"]["generator"].dtype == torch.uint8  # RNG states as tensors
    assert state["monitor"] is None or state["monitor"]["probe"] is not None
    if extra.get("norm") == "nap":
        assert "projected_optimizer" in state["optimizer"]
    if algo == "dqn":
        assert state["replay_buffer"] is not None
    assert type(agent).from_checkpoint(tmp_path / "a.pt").num_steps == agent.num_steps
    agent.close()


def test_atari_agent_checkpoint_loads_with_weights_only(tmp_path):
    pytest.importorskip("ale_py")
    env = make_env("ALE/Pong-v5", 1, "cpu", seed=0)
    agent = DQN(env, DQNConfig(learning_starts=8, batch_size=4, buffer_size=32, train_freq=4, monitor_every=0))
    agent.learn(16, progress=False)
    state = _roundtrip(agent, tmp_path / "a.pt")
    assert state["env_id"] == "ALE/Pong-v5"
    env.close()


def test_continual_run_checkpoint_loads_with_weights_only(tmp_path):
    from normrl.runs import train_stream
    from normrl.runs.checkpoints import load_latest

    train_stream("permuted-obs:CartPole-v1:2", "dqn", 48, tmp_path, device="cpu", eval_episodes=1, checkpoint_every=24,
                 overrides={"num_envs": 2, "learning_starts": 16, "batch_size": 8, "buffer_size": 64}, progress=False)
    folder, run_state = load_latest(tmp_path)
    assert json.loads(json.dumps(run_state)) == run_state  # the run state is JSON
    check_plain(torch.load(folder / "agent.pt", weights_only=True))


def test_no_warning_for_plain_files(tmp_path):
    path = _ppo().save(tmp_path / "a.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_plain(path)



def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{prefix}.{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in _flat(val, f"{prefix}[{i}]").items()}
    return {prefix: obj}


def _same(a, b) -> bool:
    fa, fb = _flat(a), _flat(b)
    return fa.keys() == fb.keys() and all(
        torch.equal(x, fb[k]) if torch.is_tensor(x) else x == fb[k] for k, x in fa.items())


INTERVENTION_SPECS = ("cbp:replacement_rate=0.01,maturity_threshold=4", "redo:tau=0.1,every=4",
                      "shrink_perturb:shrink=0.999,perturb=0.001", "l2_init:lam=0.01", "lines", "plasticity_injection")


def _agent_with_interventions(algo):
    env = make_env("CartPole-v1", 2, "cpu", seed=0)
    if algo == "ppo":
        agent = PPO(env, PPOConfig(**{**PPO_CFG.__dict__, "interventions": INTERVENTION_SPECS}))
    else:
        agent = DQN(env, DQNConfig(learning_starts=16, batch_size=8, buffer_size=64, train_freq=2, monitor_every=0,
                                   interventions=INTERVENTION_SPECS))
    agent.learn(64, progress=False)
    agent.on_task_end(0)
    agent.on_task_start(1)  # LiNeS scales, the injection adds a head
    agent.learn(32, progress=False)
    return agent


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_agent_checkpoints_with_interventions_load_with_weights_only(tmp_path, algo):
    """Every intervention's state (CBP's utilities, ages and traced activity, ReDo's
    counters, shrink & perturb's and the injection's fresh-draw RNGs, the injected head,
    LiNeS' task-start weights, l2_init's initial parameters) is tensors and plain data:
    the file loads with weights_only=True and restores networks, optimizer and
    interventions exactly; the next updates agree bit for bit."""
    agent = _agent_with_interventions(algo)
    state = _roundtrip(agent, tmp_path / "a.pt")
    assert len(state["interventions"]["interventions"]) == len(INTERVENTION_SPECS)
    restored = type(agent).from_checkpoint(tmp_path / "a.pt")
    for a, b in zip(agent.networks(), restored.networks()):
        assert _same(a.state_dict(), b.state_dict())
    assert _same(agent.optimizer.state_dict(), restored.optimizer.state_dict())
    assert _same(agent.interventions.state_dict(), restored.interventions.state_dict())
    for a in (agent, restored):
        a._trained.train(True)
        for _ in range(4):
            a._update() if algo == "dqn" else a.learn(32, progress=False)
    for a, b in zip(agent.networks(), restored.networks()):
        assert _same(a.state_dict(), b.state_dict())


@pytest.mark.xfail(strict=True, reason="main's plasticity resume: DQN with cbp, redo, shrink_perturb, l2_init and "
                                       "plasticity_injection together drifts from the uninterrupted run after ~50 "
                                       "more updates through learn (each intervention alone, and every pair, resume "
                                       "exactly; the restored state itself is equal, see the test above)")
def test_dqn_with_five_interventions_resumes_exactly_through_learn(tmp_path):
    agent = _agent_with_interventions("dqn")
    agent.save(tmp_path / "a.pt")
    restored = DQN.from_checkpoint(tmp_path / "a.pt")
    for a in (agent, restored):
        a.learn(64, progress=False)
    assert all(_same(a.state_dict(), b.state_dict()) for a, b in zip(agent.networks(), restored.networks()))


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_compiled_training_state_loads_with_weights_only(tmp_path, algo):
    """compile=True writes Adam's state itself (flat vectors inside the graph, copied
    back into the optimizer's tensors): the checkpoint is still plain data. The update
    functions run uncompiled here (tests/agents/test_compile.py compiles them)."""
    from tests.agents.test_divergence_compiled import _dqn, _ppo

    agent = _ppo(False) if algo == "ppo" else _dqn(False)
    agent.learn(64, progress=False)
    assert agent.config.compile and agent.optimizer.state  # the functional update created the state
    state = _roundtrip(agent, tmp_path / "a.pt")
    assert state["config"]["compile"] is True
    restored = type(agent).from_checkpoint(tmp_path / "a.pt")
    assert _same(agent.optimizer.state_dict(), restored.optimizer.state_dict())
