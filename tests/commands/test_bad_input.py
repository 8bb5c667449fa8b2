"""Bad input stays a clear error: every command and script, fed malformed values
(negative, zero, non-numeric, NaN, unknown names, a --logdir that is a file, lies under a
file or cannot be created, a full disk), prints exactly one line ``<prog>: error: ...``
with exit status 2 (usage) or 1 (a run that started and failed), never a traceback.

The cases run in-process through each entry point's ``main`` (an exception escaping it
would fail the test with its traceback); a few run as real subprocesses to check what
the shell sees. The exit-status rule is :mod:`normrl.commands._exit`.
"""
import dataclasses
import errno
import os
import pathlib
import runpy
import subprocess
import sys
import typing

import pytest

from normrl.agents import DQNConfig, PPOConfig
from normrl.cli import main as cli_main

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOGDIR = "{logdir}"

# Small valid command lines: a case replaces or appends one flag; a case that passes by
# mistake trains for a second and fails the test with exit status 0.
BASE = {
    "train-ppo": ["train", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "32", "--num-envs", "2", "--num-steps", "16",
                  "--device", "cpu", "--no-progress", "--logdir", LOGDIR],
    "train-dqn": ["train", "--algo", "dqn", "--env", "CartPole-v1", "--steps", "32", "--num-envs", "2",
                  "--learning-starts", "8", "--batch-size", "4", "--device", "cpu", "--no-progress", "--logdir", LOGDIR],
    "continual": ["continual", "--stream", "permuted-obs:CartPole-v1:2", "--algo", "ppo", "--steps-per-task", "32",
                  "--num-envs", "2", "--num-steps", "16", "--eval-episodes", "1", "--device", "cpu", "--no-progress",
                  "--logdir", LOGDIR],
    "split-cifar": ["split-cifar", "--dataset", "digits", "--nf", "2", "--buffer", "10", "--device", "cpu", "--no-progress",
                    "--logdir", LOGDIR],
    "nap-demo": ["nap-demo", "--tasks", "1", "--steps-per-task", "2", "--device", "cpu", "--no-progress", "--logdir", LOGDIR],
    "norms": ["norms"],
    "interventions": ["interventions"],
    # the local engine (no Ray); everything below is refused before a trial starts
    "sweep": ["sweep", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "32", "--engine", "local", "--num-cpus", "1",
              "--device", "cpu", "--no-report", "--no-progress", "--logdir", LOGDIR],
    "report": ["report", "{tmp}/runs", "--no-plots", "--reps", "100"],
    "plasticity": ["plasticity", "--quick", "--problem", "random-labels", "--arms", "none", "--seeds", "0", "--jobs", "0",
                   "--logdir", LOGDIR],
    "train_minatar.py": ["--game", "breakout", "--algo", "ppo", "--steps", "32", "--num-envs", "2", "--num-steps", "16",
                         "--no-progress", "--logdir", LOGDIR],
    "train_atari.py": ["--game", "Pong", "--algo", "dqn", "--steps", "8", "--learning-starts", "4", "--batch-size", "2",
                       "--buffer-size", "16", "--no-progress", "--logdir", LOGDIR],
    "sequential_minatar.py": ["--stream", "permuted-obs:CartPole-v1:2", "--steps-per-task", "32", "--cycles", "1",
                              "--num-envs", "2", "--eval-episodes", "1", "--no-progress", "--logdir", LOGDIR],
    "sequential_atari.py": ["--games", "Pong", "--steps-per-task", "8", "--num-envs", "1", "--eval-episodes", "1",
                            "--device", "cpu", "--no-progress", "--logdir", LOGDIR],
    "plasticity_rl.py": ["--quick", "--root", "{tmp}/prl", "--report", "{tmp}/prl.md", "--jobs", "1"],
    "split_cifar.py": ["--dataset", "digits", "--norms", "none", "--seeds", "1", "--nf", "2", "--out", "{tmp}/t.md"],
}


def _with(base, flag, value):
    """``base`` with ``flag`` set to ``value`` (replaced if present, else appended)."""
    argv = list(BASE[base])
    if flag in argv:
        argv[argv.index(flag) + 1] = value
        return argv
    return argv + [flag, value]


def _cases():
    cases = []

    def add(base, flag, values, code=2):
        for v in values:
            cases.append(pytest.param(base, _with(base, flag, v), code, id=f"{base} {flag} {v}"))

    # top-level flags
    for base in ("train-ppo", "train-dqn"):
        add(base, "--steps", ["0", "-5", "abc", "1.5"])
        add(base, "--num-envs", ["0", "-1", "two"])
        add(base, "--seed", ["abc", "-1"])
        add(base, "--threads", ["-1", "x"])
        add(base, "--checkpoint-every", ["0", "-100"])
        add(base, "--env", ["Nope-v0", "MinAtar/Nope", ""])
        add(base, "--norm", ["nope", ""])
        add(base, "--algo", ["sac"])
        add(base, "--device", ["nope", "cuda:99", "cpu:x"])
    add("continual", "--stream", ["nope", "permuted-obs:CartPole-v1:0", "permuted-obs:Nope:2", "atari-Nope", ""])
    add("continual", "--steps-per-task", ["0", "-1", "x"])
    add("continual", "--cycles", ["0", "-2"])
    add("continual", "--eval-episodes", ["-1", "x"])
    add("continual", "--checkpoint-every", ["0"])
    add("continual", "--num-envs", ["0"])
    add("continual", "--restart-lr", ["maybe"])
    add("continual", "--seed", ["-3"])
    add("continual", "--threads", ["-2"])
    add("split-cifar", "--dataset", ["nope"])
    add("split-cifar", "--n-tasks", ["0", "-1", "3", "x"])
    add("split-cifar", "--buffer", ["-1", "0"])
    add("split-cifar", "--batch-size", ["0"])
    add("split-cifar", "--replay-batch-size", ["-1"])
    add("split-cifar", "--lr", ["-1", "nan", "0", "x"])
    add("split-cifar", "--epochs", ["0"])
    add("split-cifar", "--nf", ["0"])
    add("split-cifar", "--kappa", ["-1", "nan"])
    add("split-cifar", "--adab2n-lambda", ["-1"])
    add("split-cifar", "--derpp-alpha", ["-1"])
    add("split-cifar", "--method", ["nope"])
    add("split-cifar", "--norm", ["nope"])
    add("split-cifar", "--seed", ["-1"])
    add("split-cifar", "--class-order-seed", ["x"])
    add("split-cifar", "--device", ["nope"])
    add("nap-demo", "--tasks", ["0", "-1", "x"])
    add("nap-demo", "--steps-per-task", ["0"])
    add("nap-demo", "--threads", ["0"])
    add("nap-demo", "--seed", ["-1", "x"])
    add("nap-demo", "--device", ["nope"])
    cases.append(pytest.param("norms", ["norms", "--bogus"], 2, id="norms --bogus"))
    cases.append(pytest.param("interventions", ["interventions", "--bogus"], 2, id="interventions --bogus"))
    cases.append(pytest.param("interventions", ["interventions", "redo"], 2, id="interventions redo"))
    # --intervention: unknown names, malformed and unknown options, bad values
    bad_specs = ["nosuch", "", ":", "redo:tau", "redo:=1", "redo:tau=0.1,tau=0.2", "redo:nope=1",
                 "redo:tau=abc", "redo:tau=-1", "redo:every=0", "cbp:replacement_rate=2", "shrink_perturb:shrink=nan"]
    for base in ("train-ppo", "train-dqn", "continual", "sweep"):
        add(base, "--intervention", bad_specs)
    # --compile with what a compiled update cannot reproduce (refused at construction)
    for base in ("train-ppo", "train-dqn"):
        for extra in (["--norm", "batchnorm"], ["--intervention", "redo"], ["--hessian-every", "5"],
                      ["--norm", "adab2n", "--aux-loss-coef", "0.1"]):
            argv = BASE[base] + ["--compile"] + extra
            cases.append(pytest.param(base, argv, 2, id=f"{base} --compile {' '.join(extra)}"))
    add("continual", "--intervention", ["nosuch"])
    add("continual", "--eval-tasks", ["all", ""])
    for extra in (["--reset-optimizer"], ["--restart-lr", "yes"], ["--flush-replay"]):
        argv = BASE["continual"] + ["--fresh-agent"] + extra
        cases.append(pytest.param("continual", argv, 2, id=f"continual --fresh-agent {' '.join(extra)}"))
    add("plasticity", "--problem", ["nope", "", "random-labels,nope"])
    add("plasticity", "--arms", ["nope", "none+nosuch", "none+redo:tau=x", "none@nope=1", "none@lr=x", ","])
    add("plasticity", "--arms-file", ["{tmp}/missing.json", "{tmp}/bad.json", "{tmp}/blocker"])
    add("plasticity", "--seeds", ["x", "-1", "3-1", ""])
    add("plasticity", "--protocol", ["nope"])
    add("plasticity", "--tasks", ["0", "-1", "x"])
    add("plasticity", "--epochs", ["0"])
    add("plasticity", "--batch-size", ["0", "-4"])
    add("plasticity", "--hidden", ["x", "0", "-5", ""])
    add("plasticity", "--optimizer", ["rmsprop"])
    add("plasticity", "--lr", ["0", "-1", "nan", "x"])
    add("plasticity", "--num-inputs", ["0"])
    add("plasticity", "--input-scaling", ["nope"])
    add("plasticity", "--flip-after", ["0"])
    add("plasticity", "--jobs", ["-1", "x"])
    add("plasticity_rl.py", "--problem", ["nope"])
    add("plasticity_rl.py", "--arms", ["nope", "none+nosuch", "none+redo:tau=x"])
    add("plasticity_rl.py", "--seeds", ["x", "-1"])
    add("plasticity_rl.py", "--jobs", ["0", "-1", "x"])
    add("plasticity_rl.py", "--steps-per-task", ["0", "-5"])
    add("plasticity_rl.py", "--device", ["nope"])
    add("plasticity_rl.py", "--root", ["{tmp}/blocker"])
    # sweep: the grid, the engine and the spec file
    add("sweep", "--steps", ["0", "-1", "x"])
    add("sweep", "--algo", ["sac"])
    add("sweep", "--env", ["Nope-v0", "", "ALE/pong"])
    cases.append(pytest.param("sweep", [a for a in BASE["sweep"] if a not in ("--env", "CartPole-v1", "--steps", "32")]
                              + ["--stream", "nope", "--steps-per-task", "32"], 2, id="sweep --stream nope"))
    add("sweep", "--norm", ["nope", ",", "none,nope"])
    add("sweep", "--seeds", ["x", "-1", "3-1", "0-", ""])
    add("sweep", "--set", ["learning_rate", "nope=1", "learning_rate=", "learning_rate=x", "=1", "seed=1", "num_seeds=2"])
    add("sweep", "--env-kwarg", ["max_episode_steps", "=3"])
    add("sweep", "--engine", ["dask"])
    add("sweep", "--num-cpus", ["0", "-1", "x"])
    add("sweep", "--cpus-per-trial", ["0", "-1", "x"])
    add("sweep", "--gpus-per-trial", ["-1", "x"])
    add("sweep", "--device", ["nope"])
    add("sweep", "--checkpoint-every", ["0", "-1"])
    add("sweep", "--cycles", ["0"])
    add("sweep", "--spec", ["{tmp}/missing.toml", "{tmp}/spec.txt", "{tmp}/bad.json", "{tmp}/blocker"])
    cases.append(pytest.param("sweep", BASE["sweep"] + ["--stream", "minatar"], 2, id="sweep --env and --stream"))
    cases.append(pytest.param("sweep", ["sweep", "--algo", "ppo", "--steps", "32", "--engine", "local", "--logdir", LOGDIR],
                              2, id="sweep without --env or --stream"))
    # report: a folder without runs, a file, a missing folder, bad numbers
    for target in ("{tmp}/missing", "{tmp}/blocker", "{tmp}/empty"):
        cases.append(pytest.param("report", ["report", target, "--no-plots"], 2, id=f"report {target}"))
    add("report", "--reps", ["0", "-1", "x"])
    add("report", "--score-window", ["0", "-5"])
    add("report", "--seed", ["-1", "x"])
    add("report", "--out", ["{tmp}/blocker", "{tmp}/blocker/under"])
    add("train_minatar.py", "--game", ["nope", "pong"])
    add("train_minatar.py", "--steps", ["0", "-1"])
    add("train_minatar.py", "--algo", ["sac"])
    add("train_minatar.py", "--norm", ["nope"])
    add("train_minatar.py", "--num-envs", ["0"])
    add("train_minatar.py", "--threads", ["-1"])
    add("train_atari.py", "--game", ["NotAGame"])
    add("train_atari.py", "--steps", ["-1"])
    add("sequential_minatar.py", "--steps-per-task", ["0"])
    add("sequential_minatar.py", "--cycles", ["0"])
    add("sequential_minatar.py", "--norm", ["nope"])
    add("sequential_minatar.py", "--stream", ["nope"])
    add("sequential_minatar.py", "--eval-episodes", ["-1"])
    add("sequential_atari.py", "--games", ["NotAGame", ","])
    add("sequential_atari.py", "--steps-per-task", ["0"])
    add("sequential_atari.py", "--cycles", ["-1"])
    add("split_cifar.py", "--seeds", ["0", "-1", "x"])
    add("split_cifar.py", "--nf", ["0"])
    add("split_cifar.py", "--norms", ["nope", ","])
    add("split_cifar.py", "--dataset", ["nope"])
    add("split_cifar.py", "--buffer", ["-1"])
    add("split_cifar.py", "--threads", ["-1"])
    add("split_cifar.py", "--lr", ["nan"])
    add("split_cifar.py", "--epochs", ["0"])
    # every generated agent-config flag: a negative / NaN / unknown value
    for base, cls in (("train-ppo", PPOConfig), ("train-dqn", DQNConfig)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in ("seed", "num_envs", "norm"):
                continue
            flag, hint = "--" + f.name.replace("_", "-"), hints[f.name]
            if hint is bool:
                cases.append(pytest.param(base, BASE[base] + [f"{flag}=yes"], 2, id=f"{base} {flag}=yes"))
            elif hint is int or typing.get_origin(hint) is tuple:
                add(base, flag, ["-1", "x"])
            elif hint is float or typing.get_args(hint):
                add(base, flag, ["-1", "nan", "inf", "x"])
            else:
                add(base, flag, ["nope"])
    return cases


def _run_entry(base, argv):
    """Call the entry point of ``base`` with ``argv``; return its exit status."""
    try:
        if base.endswith(".py"):
            if base in ("train_minatar.py", "train_atari.py"):
                from normrl.commands._game_script import main

                return main(base[len("train_"):-3], argv)
            return runpy.run_path(str(ROOT / "scripts" / base))["main"](argv)
        return cli_main(argv)
    except SystemExit as exc:
        return exc.code


def _prog(base):
    return base if base.endswith(".py") else f"normrl {base.split('-')[0] if base.startswith('train') else base}"


def _assert_one_line(err, prog):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    # argparse reports a flag no subcommand knows as the top-level parser's error
    assert lines[0].startswith(f"{prog}: error: ") or lines[0].startswith("normrl: error: unrecognized arguments"), err
    assert "Traceback" not in err


def _fixtures(tmp_path):
    """What the cases name under ``{tmp}``: a file, an empty folder, malformed spec files
    and a folder with one finished run (for ``report``)."""
    import json

    (tmp_path / "blocker").write_text("a file")
    (tmp_path / "empty").mkdir()
    (tmp_path / "spec.txt").write_text("algo = 'ppo'")
    (tmp_path / "bad.json").write_text("{not json")
    run = tmp_path / "runs" / "CartPole-v1" / "none" / "seed_0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "env_id": "CartPole-v1", "config": {"norm": "none", "seed": 0}}))
    (run / "summary.json").write_text(json.dumps({"status": "finished", "finished": True, "mean_return_last_100": 10.0}))


@pytest.mark.parametrize("base, argv, code", _cases())
def test_malformed_values_are_one_line_errors(base, argv, code, tmp_path, capsys):
    if base in ("train_atari.py", "sequential_atari.py"):
        pytest.importorskip("ale_py")
    _fixtures(tmp_path)
    argv = [a.replace(LOGDIR, str(tmp_path / "run")).replace("{tmp}", str(tmp_path)) for a in argv]
    status = _run_entry(base, argv)
    err = capsys.readouterr().err
    assert status == code, err
    _assert_one_line(err, _prog(base))


LOGDIR_BASES = ["train-ppo", "continual", "split-cifar", "nap-demo", "plasticity", "train_minatar.py", "sequential_minatar.py"]


@pytest.mark.parametrize("base", LOGDIR_BASES)
@pytest.mark.parametrize("problem", ["is a file", "under a file", "cannot be created"])
def test_unusable_logdir_is_a_usage_error(base, problem, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    logdir = {"is a file": blocker, "under a file": blocker / "run",
              # /proc refuses new entries even for root (a chmod'ed folder would not stop root)
              "cannot be created": pathlib.Path("/proc/normrl-test/run")}[problem]
    status = _run_entry(base, [a.replace(LOGDIR, str(logdir)) for a in BASE[base]])
    err = capsys.readouterr().err
    assert status == 2, err
    _assert_one_line(err, _prog(base))
    assert "--logdir" in err and str(logdir) in err
    assert blocker.read_text() == "a file"


@pytest.mark.parametrize("base", ["train-ppo", "continual", "split-cifar", "nap-demo"])
@pytest.mark.parametrize("where", ["json", "checkpoint"])
def test_full_disk_is_a_runtime_error(base, where, tmp_path, capsys, monkeypatch):
    """A write failing with ENOSPC (config.json/summary.json, or the agent checkpoint)."""
    if where == "checkpoint" and base in ("split-cifar", "nap-demo"):
        pytest.skip("writes no checkpoint")
    import json

    import torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "json":
        monkeypatch.setattr(json, "dump", full)
    else:
        monkeypatch.setattr(torch, "save", full)
    status = _run_entry(base, [a.replace(LOGDIR, str(tmp_path / "run")) for a in BASE[base]])
    err = capsys.readouterr().err
    assert status == 1, err
    _assert_one_line(err, _prog(base))
    assert "No space left on device" in err
    assert not list((tmp_path / "run").rglob("*.tmp"))  # no half-written file left behind


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 256 KiB tmpfs (root on Linux only; skipped elsewhere)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_really_full_disk_is_a_runtime_error(tiny_tmpfs):
    """A DQN checkpoint with its replay buffer does not fit in 256 KiB: exit status 1, one
    line, as the shell sees it."""
    logdir = tiny_tmpfs / "run"
    proc = subprocess.run([sys.executable, "-m", "normrl.cli", "train", "--algo", "dqn", "--env", "MinAtar/Breakout",
                           "--steps", "64", "--buffer-size", "5000", "--learning-starts", "32", "--batch-size", "4",
                           "--no-progress", "--threads", "1", "--logdir", str(logdir)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stderr
    _assert_one_line(proc.stderr, "normrl train")
    assert "No space left on device" in proc.stderr
    assert not list(logdir.rglob("*.tmp"))


@pytest.mark.parametrize("argv, code", [
    (["-m", "normrl.cli", "train", "--algo", "ppo", "--env", "Nope", "--steps", "10"], 2),
    (["-m", "normrl.cli", "continual", "--stream", "minatar", "--algo", "ppo", "--steps-per-task", "-1", "--logdir", "x"], 2),
    (["-m", "normrl.cli", "train", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "ten"], 2),
    (["scripts/train_minatar.py", "--game", "nope"], 2),
    (["scripts/split_cifar.py", "--seeds", "0"], 2),
])
def test_what_the_shell_sees(argv, code, tmp_path):
    proc = subprocess.run([sys.executable, *[str(ROOT / a) if a.startswith("scripts/") else a for a in argv]],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == code
    assert len(proc.stderr.strip().splitlines()) == 1 and "error: " in proc.stderr and "Traceback" not in proc.stderr
