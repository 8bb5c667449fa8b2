"""Same seed, same run: two fresh processes with the same seed write identical
``summary.json`` metrics (everything but wall-clock times) on CPU, for PPO and DQN on
CartPole and a MinAtar game, a continual stream and the online learner; a third process
with another seed differs (so the comparison can fail). docs/reproducibility.md says
what this covers and what it does not."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

CASES = {
    "ppo-cartpole": ["train", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "1024", "--num-envs", "4",
                     "--num-steps", "32", "--monitor-every", "4"],
    "dqn-cartpole": ["train", "--algo", "dqn", "--env", "CartPole-v1", "--steps", "1024", "--num-envs", "2",
                     "--learning-starts", "128", "--batch-size", "32", "--buffer-size", "1024", "--train-freq", "2",
                     "--monitor-every", "16", "--log-interval", "64"],
    "ppo-minatar": ["train", "--algo", "ppo", "--env", "MinAtar/Breakout", "--steps", "512", "--num-envs", "4",
                    "--num-steps", "32", "--monitor-every", "4"],
    "dqn-minatar": ["train", "--algo", "dqn", "--env", "MinAtar/SpaceInvaders", "--steps", "512", "--num-envs", "2",
                    "--learning-starts", "64", "--batch-size", "16", "--buffer-size", "512", "--train-freq", "2",
                    "--monitor-every", "16", "--log-interval", "64"],
    "continual": ["continual", "--stream", "permuted-obs:CartPole-v1:2", "--algo", "ppo", "--steps-per-task", "256",
                  "--num-envs", "4", "--num-steps", "32", "--eval-episodes", "2", "--device", "cpu"],
    "online": ["split-cifar", "--dataset", "digits", "--norm", "adab2n", "--method", "derpp", "--nf", "4",
               "--buffer", "40", "--device", "cpu"],
}


def _metrics(obj, drop=()):
    """``obj`` without wall-clock entries (``*_seconds``, ``steps_per_second``) and the
    keys in ``drop``."""
    if isinstance(obj, dict):
        return {k: _metrics(v, drop) for k, v in obj.items() if "seconds" not in k and "per_second" not in k
                and k not in drop}
    if isinstance(obj, list):
        return [_metrics(v, drop) for v in obj]
    return obj


def _launch(argv, logdir, seed):
    return subprocess.Popen([sys.executable, "-m", "normrl.cli", *argv, "--seed", str(seed), "--logdir", str(logdir),
                             "--no-progress", *([] if argv[0] == "split-cifar" else ["--threads", "1"])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_with_one_seed_write_the_same_summary(name, tmp_path):
    runs = {key: (tmp_path / key, seed) for key, seed in (("a", 0), ("b", 0), ("other_seed", 1))}
    procs = {key: _launch(CASES[name], d, seed) for key, (d, seed) in runs.items()}
    for key, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{key}: {err}"
    a, b, c = (json.loads((runs[k][0] / "summary.json").read_text()) for k in ("a", "b", "other_seed"))
    assert _metrics(a) == _metrics(b)
    assert _metrics(a, drop={"seed"}) != _metrics(c, drop={"seed"})  # the metrics themselves depend on the seed
