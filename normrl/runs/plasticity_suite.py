"""The plasticity suite: problems × arms × seeds, one run directory each, run in parallel
worker processes, finished runs skipped when the suite is run again.

Layout under ``root``: ``<problem>/<arm>/seed<S>/`` holds ``config.json`` (problem,
arm, resolved learner settings, machine), TensorBoard events (``task/*`` per task,
``plasticity/*`` per task end) and, once finished, ``summary.json``
(:func:`~normrl.continual.task_sequence.train_task_sequence`'s result with
``"finished": true``), plus ``worker.log``. A run directory without a finished
summary is removed and the run starts over (runs are minutes long; there are no
checkpoints). A finished run whose config.json differs from the planned one is an
error: one root holds one suite configuration.

Budgets: every problem's default is its paper's protocol
(:attr:`~normrl.data.problems.ContinualProblem.protocol`, :meth:`config`);
:data:`SUITE_BUDGETS` is the documented smaller budget the suite runs by default,
chosen so that the whole supervised suite (every default arm, 3 seeds) takes minutes
on a 2-core CPU while the plain network visibly loses plasticity
(docs/results/plasticity_supervised.md).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from normrl.data.problems.registry import make_problem, problem_class
from normrl.runs.local_jobs import Job, run_local_jobs
from normrl.runs.plasticity_arms import Arm, parse_arm_list, with_references
from normrl.runs.status import DONE, run_status
from normrl.utils.run_dir import environment_info, to_jsonable, write_json

__all__ = ["SUITE_BUDGETS", "DEFAULT_ARMS", "DEFAULT_PROBLEMS", "SuitePlan", "run_plasticity", "run_suite", "suite_budget"]

#: The arms of ``normrl plasticity`` when ``--arms`` is not given (the oracle ``fresh``
#: and the plain network ``none`` are always added).
DEFAULT_ARMS = "none,layernorm,nap,none+l2_init,none+redo,none+cbp,none+shrink_perturb,crelu"
DEFAULT_PROBLEMS = ("random-labels", "permuted-inputs", "bit-flipping")

#: The suite's budget per problem: problem keywords and learner settings over the
#: paper's protocol. Chosen on the shared 2-core machine (see
#: docs/results/plasticity_supervised.md for the calibration and why).
SUITE_BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    # the calibration network (3x256 ReLU, Adam 1e-3, batch 64) on all 1,797
    # standardized images, 10 epochs per task instead of 30 (a fresh network reaches
    # about 0.45 instead of memorizing everything), 20 tasks
    "random-labels": {
        "problem": {"num_tasks": 20, "num_inputs": 1797},
        "learner": {"hidden": (256, 256, 256), "epochs": 10, "batch_size": 64},
    },
    # Kumar et al.'s network and batch, one pass per task, 60 tasks, Adam 1e-2 (at 1e-3
    # the plain network lost 3 points in 150 tasks)
    "permuted-inputs": {
        "problem": {"num_tasks": 60, "num_inputs": 1797},
        "learner": {"hidden": (100, 100), "epochs": 1, "batch_size": 16, "lr": 1e-2},
    },
    # the paper's learner (20-5-1, SGD 0.01, batch 1); 80k examples with a flip every
    # 4,000 instead of 3M with a flip every 10,000
    "bit-flipping": {
        "problem": {"num_tasks": 20, "flip_after": 4000},
        "learner": {},
    },
}


def suite_budget(problem: str, protocol: str = "suite") -> tuple[dict, dict]:
    """``(problem keywords, learner settings)`` of ``problem`` under ``protocol``
    (``"suite"``: :data:`SUITE_BUDGETS`; ``"paper"``: nothing over the paper's
    protocol)."""
    name = problem_class(problem).name
    if protocol == "paper":
        return {}, {}
    if protocol != "suite":
        raise ValueError(f"protocol must be 'suite' or 'paper', got {protocol!r}")
    budget = SUITE_BUDGETS.get(name, {})
    return dict(budget.get("problem", {})), dict(budget.get("learner", {}))


@dataclass
class SuitePlan:
    """What to run.

    Attributes:
        root: the suite's folder.
        problems: problem names.
        arms: the arms (the oracle and the plain network are added first).
        seeds: run seeds (each seeds the problem's data and the learner).
        problem_kwargs: per problem, keywords over the problem's defaults.
        learner: per problem, :class:`~normrl.continual.task_sequence.TaskSequenceConfig`
            fields over the problem's protocol (an arm's own settings win).
    """

    root: Path
    problems: tuple[str, ...] = DEFAULT_PROBLEMS
    arms: list[Arm] = field(default_factory=lambda: parse_arm_list(DEFAULT_ARMS))
    seeds: tuple[int, ...] = (0, 1, 2)
    problem_kwargs: dict[str, dict] = field(default_factory=dict)
    learner: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        self.root = Path(self.root)
        self.problems = tuple(problem_class(p).name for p in self.problems)
        self.arms = with_references(list(self.arms))
        if not self.seeds:
            raise ValueError("seeds must not be empty")

    def run_dir(self, problem: str, arm: Arm, seed: int) -> Path:
        """The run directory of one (problem, arm, seed)."""
        return self.root / problem / arm.dirname / f"seed{seed}"

    def run_kwargs(self, problem: str, arm: Arm, seed: int) -> dict[str, Any]:
        """The :func:`run_plasticity` keywords of one run."""
        config = {**self.learner.get(problem, {}), **arm.config_overrides(), "seed": seed}
        return dict(problem=problem, problem_kwargs={**self.problem_kwargs.get(problem, {}), "seed": seed},
                    config=to_jsonable(config), arm=arm.to_dict(), logdir=str(self.run_dir(problem, arm, seed)))


def _planned_config(kwargs: dict) -> dict:
    return to_jsonable({"problem": kwargs["problem"], "problem_kwargs": kwargs["problem_kwargs"], "config": kwargs["config"],
                        "arm": kwargs["arm"]})


def run_plasticity(problem: str, problem_kwargs: dict, config: dict, arm: dict, logdir: str) -> dict:
    """One run: builds the problem and the learner, writes ``config.json``, trains on every
    task with TensorBoard logging, writes ``summary.json`` (``"finished": true``) and
    returns it. A top-level function, so a worker process can run it."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from normrl.continual.task_sequence import TaskSequenceConfig, train_task_sequence

    path = Path(logdir)
    path.mkdir(parents=True, exist_ok=True)
    prob = make_problem(problem, **problem_kwargs)
    cfg = TaskSequenceConfig.from_dict(config)
    planned = _planned_config(dict(problem=problem, problem_kwargs=problem_kwargs, config=config, arm=arm))
    write_json(path / "config.json", {**planned, "resolved": cfg.resolved(prob).to_dict(),
                                      "protocol": prob.protocol.to_dict(), "paper": prob.paper,
                                      "environment": environment_info(), "threads": torch.get_num_threads()})
    writer = SummaryWriter(str(path))
    try:
        result = train_task_sequence(prob, cfg, writer=writer,
                                     progress=lambda r: print(f"task {r['task']}: " + ", ".join(
                                         f"{k} {v:.4g}" for k, v in r.items() if k != "task" and isinstance(v, float)), flush=True))
    finally:
        writer.close()
    summary = {"finished": True, "arm": arm, **result}
    write_json(path / "summary.json", summary)
    return summary


def _check_saved(run_dir: Path, kwargs: dict) -> None:
    config = run_dir / "config.json"
    if not config.is_file():
        return
    try:
        saved = json.loads(config.read_text())
    except (OSError, ValueError):
        return
    planned = _planned_config(kwargs)
    diff = sorted(k for k in planned if saved.get(k) != planned[k])
    if diff:
        raise ValueError(f"{run_dir} holds a finished run with other settings ({', '.join(diff)} differ); "
                         "use another --logdir for another suite configuration")


def _run_logged(kwargs: dict) -> tuple[int, str]:
    """:func:`run_plasticity` with this process's output (file descriptors 1 and 2)
    sent to the run's ``worker.log``; returns ``(exit status, summary line)``."""
    import os
    import sys
    import traceback

    run_dir = Path(kwargs["logdir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    code = 0
    with open(run_dir / "worker.log", "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            run_plasticity(**kwargs)
        except Exception:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    return code, (_run_line(run_dir) if code == 0 else f"failed, see {run_dir / 'worker.log'}")


def _suite_worker(queue, results) -> None:
    """A worker process: takes ``(name, run keywords)`` from ``queue`` until it is empty,
    runs each (:func:`_run_logged`) and puts ``(name, exit status, summary line)`` on
    ``results``. One process runs many short runs, so torch and TensorBoard are
    imported once per worker, not once per run."""
    import queue as queue_module

    while True:
        try:
            name, kwargs = queue.get(timeout=1.0)
        except queue_module.Empty:
            return
        results.put((name, *_run_logged(kwargs)))


def run_suite(plan: SuitePlan, jobs: int = 2, echo: Callable[[str], Any] = print) -> dict[tuple[str, str, int], int]:
    """Run every (problem, arm, seed) of ``plan`` not yet finished on ``jobs`` worker
    processes (:func:`~normrl.runs.local_jobs.run_local_jobs`, one torch thread each;
    each worker takes the next run from a shared queue); ``jobs=0`` runs them one after
    the other in this process (for debugging; the output still goes to each run's
    worker.log). ``echo`` gets one line per skipped and per finished run. Returns
    ``{(problem, arm name, seed): exit status}`` (0 for runs skipped as finished; 1 for
    a run that raised or never finished)."""
    import multiprocessing
    import threading

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ValueError(f"jobs must be an int >= 0 (0: in this process), got {jobs!r}")
    todo: list[tuple[str, dict]] = []
    keys: dict[str, tuple[str, str, int]] = {}
    status: dict[tuple[str, str, int], int] = {}
    for problem in plan.problems:
        for seed in plan.seeds:  # seed-major: an interrupted suite still has every arm's first seeds
            for arm in plan.arms:
                d = plan.run_dir(problem, arm, seed)
                kwargs = plan.run_kwargs(problem, arm, seed)
                if run_status(d) == DONE:
                    _check_saved(d, kwargs)
                    status[(problem, arm.name, seed)] = 0
                    echo(f"skip {problem} {arm.name} seed {seed}: finished")
                    continue
                if d.exists():
                    shutil.rmtree(d)
                name = f"{problem} {arm.name} seed {seed}"
                keys[name] = (problem, arm.name, seed)
                todo.append((name, kwargs))
    if not todo:
        return status
    if jobs == 0:
        for i, (name, kwargs) in enumerate(todo, 1):
            code, line = _run_logged(kwargs)
            status[keys[name]] = code
            echo(f"[{i}/{len(todo)}] {name}: {line}")
        return status
    ctx = multiprocessing.get_context("spawn")
    queue, results = ctx.Queue(), ctx.Queue()
    for item in todo:
        queue.put(item)
    done: dict[str, int] = {}

    def collect() -> None:
        while len(done) < len(todo):
            try:
                name, code, line = results.get(timeout=0.5)
            except Exception:
                if stop.is_set():
                    return
                continue
            done[name] = code
            echo(f"[{len(done)}/{len(todo)}] {name}: {line}")

    stop = threading.Event()
    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    workers = [Job(f"worker {i}", _suite_worker, {"queue": queue, "results": results}, plan.root / "_workers" / f"worker{i}.log")
               for i in range(min(jobs, len(todo)))]
    run_local_jobs(workers, len(workers), echo=lambda line: None)
    stop.set()
    reader.join(timeout=10)
    for name, key in keys.items():
        status[key] = done.get(name, 1)
    return status


def _run_line(run_dir: Path) -> str:
    """One line about a finished run: first/last-5 headline values and its time."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return f"{run_dir}: no summary (see worker.log)"
    key = "train_accuracy" if summary.get("kind") == "classification" else "train_loss"
    values = [r[key] for r in summary["tasks"]]
    first, last = values[:5], values[-5:]
    return (f"{key}: first-5 {sum(first) / len(first):.4g}, last-5 {sum(last) / len(last):.4g}; "
            f"{summary['train_seconds']:.0f} s wall, {summary['cpu_seconds']:.0f} s CPU")
