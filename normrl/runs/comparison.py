"""The sequential-MinAtar norm comparison (NaP's claim, Lyle et al. 2024, arXiv 2407.01800,
reproduced small): one :func:`~normrl.runs.train_stream` run per (norm, seed), run in
parallel worker processes with one torch thread each (:mod:`normrl.runs.local_jobs`);
the report comes from :func:`normrl.analysis.results.write_report`.

Layout under ``root``: ``<norm>/seed<S>/`` is a normal continual run directory
(config.json, TensorBoard events, summary.json, checkpoints) plus ``worker.log`` (the
worker's output). Finished runs are skipped; runs with a checkpoint are continued with
``resume=True``; anything else in a run directory (an interrupted start before the
first checkpoint) is removed and the run starts over.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from normrl.runs.local_jobs import Job, run_local_jobs
from normrl.runs.status import DIVERGED, DONE, FRESH, run_status
from normrl.runs.stream import train_stream

#: The comparison as specified: PPO, these norms, 3 seeds, the five games twice.
DEFAULT_NORMS: tuple[str, ...] = ("none", "layernorm", "nap")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
#: MinAtar has no time limit, and a greedy policy that keeps the Seaquest sub at the
#: surface never loses, so the comparison truncates every MinAtar episode at 1000 steps.
MINATAR_ENV_KWARGS = {"max_episode_steps": 1000}


@dataclass
class ComparisonPlan:
    """What to run. ``overrides`` are agent config fields over the stream's preset;
    ``env_kwargs`` extra ``make_env`` keywords of every task (default:
    :data:`MINATAR_ENV_KWARGS` for the ``minatar`` stream, none otherwise)."""

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
    env_kwargs: dict | None = None

    def __post_init__(self):
        if self.env_kwargs is None:
            self.env_kwargs = dict(MINATAR_ENV_KWARGS) if self.stream == "minatar" else {}

    def run_dir(self, norm: str, seed: int) -> Path:
        """The run directory of one (norm, seed)."""
        return Path(self.root) / norm / f"seed{seed}"

    def run_kwargs(self, norm: str, seed: int, resume: bool) -> dict[str, Any]:
        """The :func:`~normrl.runs.train_stream` keyword arguments of one run."""
        overrides = {**self.overrides, "norm": norm, "seed": seed}
        if self.num_envs is not None:
            overrides["num_envs"] = self.num_envs
        return dict(stream=self.stream, algo=self.algo, steps_per_task=self.steps_per_task,
                    logdir=str(self.run_dir(norm, seed)), cycles=self.cycles, overrides=overrides,
                    env_kwargs=self.env_kwargs, device="cpu", resume=resume, eval_episodes=self.eval_episodes,
                    checkpoint_every=self.steps_per_task, progress=False)


def run_state(run_dir: Path, steps_per_task: int | None = None) -> str:
    """:func:`~normrl.runs.run_status` of one run; with ``steps_per_task`` given, a run
    directory whose config.json records another budget raises ValueError (one root
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
    return run_status(run_dir)


def run_comparison(plan: ComparisonPlan, jobs: int = 2, echo: Callable[[str], Any] = print) -> dict[tuple[str, int], int]:
    """Run every (norm, seed) of ``plan`` not yet done, ``jobs`` processes at a time.
    Returns ``{(norm, seed): exit status}`` (0 for skipped finished runs)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    todo: list[Job] = []
    keys: dict[str, tuple[str, int]] = {}
    status: dict[tuple[str, int], int] = {}
    for seed in plan.seeds:  # seed-major: an unfinished comparison still has every norm's first seeds
        for norm in plan.norms:
            d = plan.run_dir(norm, seed)
            state = run_state(d, plan.steps_per_task)
            if state == DONE:
                status[(norm, seed)] = 0
                echo(f"skip {norm} seed {seed}: finished")
                continue
            if state == DIVERGED:
                status[(norm, seed)] = 1
                echo(f"skip {norm} seed {seed}: diverged (see its summary.json)")
                continue
            if state == FRESH and d.exists():
                shutil.rmtree(d)
            name = f"{norm} seed {seed}{'' if state == FRESH else ' (resume)'}"
            keys[name] = (norm, seed)
            todo.append(Job(name, train_stream, plan.run_kwargs(norm, seed, resume=state != FRESH), d / "worker.log"))
    for name, code in run_local_jobs(todo, jobs, echo=echo).items():
        status[keys[name]] = code
    return status
