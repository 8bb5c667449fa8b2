"""The sequential-MinAtar norm comparison (NaP's claim, Lyle et al. 2024, arXiv 2407.01800,
reproduced small): one ``normrl continual`` run per (norm, seed), run in parallel
worker processes with one torch thread each, then the results report.

Layout under ``root``: ``<norm>/seed<S>/`` is a normal ``normrl continual`` run
directory (config.json, TensorBoard events, summary.json, checkpoints) plus
``worker.log`` (the worker's output). Runs whose ``summary.json`` holds the full
return matrix are skipped; runs with a checkpoint are continued with ``--resume``;
anything else in a run directory (an interrupted start before the first checkpoint) is
removed and the run starts over.

Each worker is ``python -m normrl.experiments.comparison --override FIELD=JSON ...
--env-kwarg KEY=JSON ... -- <normrl continual arguments>``: it sets one torch thread,
adds the ``--env-kwarg`` keywords to every task of the ``minatar`` stream, adds the overrides to the
stream's agent preset (the continual command takes its agent config from
:data:`normrl.agents.presets.PRESETS`; the full config lands in the run's
config.json), and runs the command.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The comparison as specified: PPO, these norms, 3 seeds, the five games twice.
DEFAULT_NORMS: tuple[str, ...] = ("none", "layernorm", "nap")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)


@dataclass
class ComparisonPlan:
    """What to run. ``overrides`` are agent config fields over the stream's preset."""

    root: Path
    stream: str = "minatar"
    algo: str = "ppo"
    norms: tuple[str, ...] = DEFAULT_NORMS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    steps_per_task: int = 40_960
    cycles: int = 2
    num_envs: int | None = 16
    eval_episodes: int = 8
    overrides: dict = field(default_factory=lambda: {"monitor_every": 16})
    #: extra ``make_env`` keywords of every task of a ``minatar`` stream (training and
    #: evaluation). Default: truncate episodes at 1000 steps -- MinAtar has no time
    #: limit, and a greedy policy that keeps the Seaquest sub at the surface never
    #: loses, so an uncapped evaluation would not end.
    stream_env_kwargs: dict = field(default_factory=lambda: {"max_episode_steps": 1000})

    def run_dir(self, norm: str, seed: int) -> Path:
        """The run directory of one (norm, seed)."""
        return Path(self.root) / norm / f"seed{seed}"

    def continual_args(self, norm: str, seed: int, resume: bool) -> list[str]:
        """``normrl continual`` arguments of one run."""
        args = ["continual", "--stream", self.stream, "--algo", self.algo, "--norm", norm,
                "--steps-per-task", str(self.steps_per_task), "--cycles", str(self.cycles),
                "--seed", str(seed), "--logdir", str(self.run_dir(norm, seed)), "--device", "cpu",
                "--eval-episodes", str(self.eval_episodes), "--no-progress",
                "--checkpoint-every", str(self.steps_per_task)]
        if self.num_envs is not None:
            args += ["--num-envs", str(self.num_envs)]
        return args + (["--resume"] if resume else [])

    def worker_command(self, norm: str, seed: int, resume: bool) -> list[str]:
        """The worker process command line of one run."""
        cmd = [sys.executable, "-m", "normrl.experiments.comparison"]
        for k, v in sorted(self.overrides.items()):
            cmd += ["--override", f"{k}={json.dumps(v)}"]
        for k, v in sorted(self.stream_env_kwargs.items()):
            cmd += ["--env-kwarg", f"{k}={json.dumps(v)}"]
        return cmd + ["--"] + self.continual_args(norm, seed, resume)


def run_state(run_dir: Path, expected_visits: int, steps_per_task: int | None = None) -> str:
    """``"done"`` (summary.json holds ``expected_visits`` evaluated visits),
    ``"resume"`` (a checkpoint exists) or ``"fresh"``. With ``steps_per_task`` given, a
    run directory whose config.json records another budget raises ValueError (one root
    holds one comparison)."""
    config = run_dir / "config.json"
    if steps_per_task is not None and config.is_file():
        try:
            saved = json.loads(config.read_text())["continual"]["steps_per_task"]
        except (OSError, ValueError, KeyError, TypeError):
            saved = None
        if saved is not None and saved != steps_per_task:
            raise ValueError(f"{run_dir} holds a run with {saved} steps per task, not {steps_per_task}; "
                             "use another --root for another budget")
    summary = run_dir / "summary.json"
    if summary.is_file():
        try:
            visits = json.loads(summary.read_text())["continual"]["visit_tasks"]
            if len(visits) >= expected_visits:
                return "done"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if (run_dir / "checkpoints" / "latest.json").is_file():
        return "resume"
    return "fresh"


def expected_visits(plan: ComparisonPlan) -> int:
    """Task visits of one run: stream length x cycles."""
    from normrl.envs.streams import stream_tasks

    return len(stream_tasks(plan.stream, plan.steps_per_task)) * plan.cycles


def run_comparison(plan: ComparisonPlan, jobs: int = 2, echo=print) -> dict[tuple[str, int], int]:
    """Run every (norm, seed) of ``plan`` not yet done, ``jobs`` processes at a time.
    Returns ``{(norm, seed): exit status}`` (0 for skipped finished runs)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    visits = expected_visits(plan)
    pending: list[tuple[str, int, bool]] = []
    status: dict[tuple[str, int], int] = {}
    for seed in plan.seeds:  # seed-major: an unfinished comparison still has every norm's first seeds
        for norm in plan.norms:
            d = plan.run_dir(norm, seed)
            state = run_state(d, visits, plan.steps_per_task)
            if state == "done":
                status[(norm, seed)] = 0
                echo(f"skip {norm} seed {seed}: finished")
                continue
            if state == "fresh" and d.exists():
                shutil.rmtree(d)
            pending.append((norm, seed, state == "resume"))
    running: list[tuple[tuple[str, int], subprocess.Popen, object, float]] = []
    while pending or running:
        while pending and len(running) < jobs:
            norm, seed, resume = pending.pop(0)
            d = plan.run_dir(norm, seed)
            d.mkdir(parents=True, exist_ok=True)
            log = open(d / "worker.log", "a")
            echo(f"start {norm} seed {seed}{' (resume)' if resume else ''}")
            proc = subprocess.Popen(plan.worker_command(norm, seed, resume), stdout=log, stderr=subprocess.STDOUT)
            running.append(((norm, seed), proc, log, time.time()))
        time.sleep(0.2)
        for item in list(running):
            key, proc, log, t0 = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                status[key] = proc.returncode
                echo(f"end {key[0]} seed {key[1]}: exit {proc.returncode} after {time.time() - t0:.0f}s")
    return status


def _worker(argv: list[str]) -> int:
    """Worker entry: ``--override FIELD=JSON ... -- <continual args>``."""
    import torch

    torch.set_num_threads(1)
    if "--" not in argv:
        raise SystemExit("usage: python -m normrl.experiments.comparison [--override FIELD=JSON ...] -- <continual args>")
    split = argv.index("--")
    head, rest = argv[:split], argv[split + 1:]
    overrides, env_kwargs = {}, {}
    for i in range(0, len(head), 2):
        if head[i] not in ("--override", "--env-kwarg") or i + 1 >= len(head) or "=" not in head[i + 1]:
            raise SystemExit(f"bad worker arguments {head!r}")
        key, value = head[i + 1].split("=", 1)
        (overrides if head[i] == "--override" else env_kwargs)[key] = json.loads(value)
    from normrl.agents import presets
    from normrl.cli import main
    from normrl.envs import streams
    from normrl.envs.streams import stream_tasks

    # stream_tasks copies this dict into every minatar task's env_kwargs
    streams.MINATAR_STREAM_KWARGS.update(env_kwargs)

    stream = rest[rest.index("--stream") + 1]
    algo = rest[rest.index("--algo") + 1]
    env_id = stream_tasks(stream, 1)[0].env_id
    key = (algo, env_id) if (algo, env_id) in presets.PRESETS else (algo, env_id.split("/")[0])
    presets.PRESETS[key] = {**presets.PRESETS.get(key, {}), **overrides}
    return main(rest)


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
