"""The continual-RL plasticity problem: arms × seeds of one PPO/DQN task stream, each
run against the fresh-agent oracle, in parallel worker processes, finished runs skipped.

A *problem* (:class:`RLProblem`, the built-in ones in :data:`RL_PROBLEMS`) is a stream
of :func:`normrl.continual.stream_tasks` with its agent settings and budget. An *arm*
(:func:`parse_rl_arm`) is a norm plus interventions, in the supervised suite's arm
grammar: ``BASE[+INTERVENTION_SPEC]...`` with ``BASE`` a registered norm (``none``,
``layernorm``, ``nap``, ...) or ``fresh``, the oracle (a new plain agent at every visit:
``train_stream(..., fresh_agent=True)``). ``fresh-<norm>`` (e.g. ``fresh-nap``) is a new
agent with that norm at every visit: the same-architecture reference that separates what
a norm adds to learning any task from what it keeps over the stream. ``fresh`` and
``none`` (the plain agent) are in every plan.

Layout under ``root`` (the supervised suite's): ``<problem>/<arm dir>/seed<S>/`` is a
:func:`~normrl.runs.train_stream` run directory (config.json, TensorBoard events,
checkpoints after every visit, summary.json) plus ``worker.log``. When the stream is
finished, :func:`finalize_run` adds to ``summary.json``: ``"finished": true``,
``"kind": "rl"``, ``"problem"``, ``"arm"`` (name, norm, interventions, fresh),
``"config": {"seed": S}``, ``"wall_seconds"`` and ``"tasks"``, the per-visit records of
:func:`normrl.analysis.plasticity_rl_report.visit_records` (training return over the
last quarter of the visit, evaluation return after it (greedy: the problem's
``eval_epsilon`` 0.0), dormant ratio, weight norm). Re-running skips finished runs, resumes runs with a checkpoint, restarts the
others; a run directory whose config.json records another budget is an error (one root
holds one configuration of a problem).

The measure needs only each visit's own task evaluated, so runs use
``eval_tasks="current"``.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from normrl.runs.local_jobs import Job, run_local_jobs
from normrl.runs.plasticity_arms import ORACLE, PLAIN, arm_dirname
from normrl.runs.status import DONE, FRESH, run_status
from normrl.runs.stream import LATER_RESUME_KEYS

__all__ = ["RLProblem", "RL_PROBLEMS", "RLArm", "parse_rl_arm", "parse_rl_arms", "DEFAULT_RL_ARMS", "RLPlan",
           "train_rl_arm", "finalize_run", "run_rl_plasticity", "ORACLE", "PLAIN"]



@dataclass(frozen=True)
class RLProblem:
    """A continual-RL plasticity problem: the stream, the agent and the budget.

    Attributes:
        name: the problem's name (its folder under the root).
        stream: a :func:`~normrl.continual.stream_tasks` name.
        algo: ``"ppo"`` or ``"dqn"``.
        steps_per_task: env steps per visit.
        overrides: agent config fields over the stream's env preset (every arm).
        env_kwargs: ``make_env`` keywords of every task.
        eval_episodes: episodes of the evaluation after each visit.
        eval_epsilon: ε of that evaluation [0.0: greedy, explicitly, whatever
            ``train_stream``'s default for new runs (0.05); the committed results were
            evaluated greedily, so reruns and resumes agree with them].
        cycles: passes over the stream.
        note: what the setting is and where its values come from.
    """

    name: str
    stream: str
    algo: str
    steps_per_task: int
    overrides: dict = field(default_factory=dict)
    env_kwargs: dict = field(default_factory=dict)
    eval_episodes: int = 8
    eval_epsilon: float = 0.0
    cycles: int = 1
    note: str = ""

    def scaled(self, **changes) -> "RLProblem":
        """A copy with some fields changed (``overrides`` merged, not replaced)."""
        if "overrides" in changes:
            changes["overrides"] = {**self.overrides, **changes["overrides"]}
        data = {**asdict(self), **changes}
        return RLProblem(**data)


#: PPO on MinAtar Breakout with a new observation permutation per task (task 0
#: unpermuted): the input shift of Permuted MNIST (Goodfellow et al. 2013, arXiv
#: 1312.6211) in on-policy RL, the "permute" shift of Juliani & Ash 2024 (arXiv
#: 2405.19153). The MinAtar PPO preset (CleanRL's Atari settings) with PureJaxRL's
#: MinAtar learning rate 5e-3 held constant and 16 envs x 128 steps (batch 2,048, 16
#: updates of 512 per rollout, 240 per visit). See docs/results/plasticity_rl.md for
#: the pilots behind these values.
RL_PROBLEMS: dict[str, RLProblem] = {
    "permuted-breakout": RLProblem(
        name="permuted-breakout", stream="permuted-obs:MinAtar/Breakout:7", algo="ppo", steps_per_task=30_720,
        overrides={"num_envs": 16, "num_steps": 128, "learning_rate": 5e-3, "lr_schedule": "constant",
                   "monitor_every": 32},
        env_kwargs={"max_episode_steps": 1000}, eval_episodes=8,
        note="PPO (the MinAtar preset: CleanRL's Atari settings, 4 epochs x 4 minibatches; with 16 envs x 128 steps "
             "and PureJaxRL's MinAtar learning rate 5e-3, held constant) on MinAtar Breakout with a new observation "
             "permutation per task (task 0 unpermuted); episodes truncated at 1,000 steps"),
}
#: The full-scale version for a GPU: 20 tasks of 500k steps (the MinAtar paper trains a
#: game for 5M steps), 64 envs, evaluation with 32 episodes.
GPU_SCALE = {"stream": "permuted-obs:MinAtar/Breakout:20", "steps_per_task": 500_000, "eval_episodes": 32,
             "overrides": {"num_envs": 64}}


@dataclass(frozen=True)
class RLArm:
    """One arm: its name (the arm string), norm, interventions, and whether it is the
    fresh-agent oracle."""

    name: str
    norm: str = "none"
    interventions: tuple[str, ...] = ()
    fresh: bool = False

    @property
    def dirname(self) -> str:
        """The run-directory name (the supervised suite's rule, :func:`~normrl.runs.plasticity_arms.arm_dirname`)."""
        return arm_dirname(self.name)

    def to_dict(self) -> dict:
        return {"name": self.name, "norm": self.norm, "interventions": list(self.interventions), "fresh": self.fresh}


def parse_rl_arm(text: str) -> RLArm:
    """``BASE[+SPEC]...`` → :class:`RLArm`; ``BASE`` is a registered norm, ``fresh`` (the
    oracle) or ``fresh-<norm>`` (a fresh agent with that norm); fresh arms take no
    interventions. Each ``SPEC`` is an intervention spec (``redo:every=64``).
    ValueError naming the valid choices otherwise."""
    from normrl.normalization.registry import list_norms
    from normrl.plasticity.spec import build_interventions, parse_intervention_spec

    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"an arm is a non-empty string, got {text!r}")
    name = text.strip()
    parts = [p.strip() for p in name.split("+")]
    if any(not p for p in parts):
        raise ValueError(f"arm {name!r}: empty part between '+' signs")
    base, specs = parts[0], parts[1:]
    for spec in specs:
        parse_intervention_spec(spec)  # ValueError naming the valid interventions / options
        try:
            build_interventions([spec])  # the intervention's own checks of its values
        except TypeError as exc:
            raise ValueError(f"arm {name!r}: {exc}") from None
    norms = list_norms()
    if base == ORACLE or base.startswith(ORACLE + "-"):
        if specs:
            raise ValueError(f"arm {name!r}: a fresh-agent arm ({ORACLE!r}, '{ORACLE}-<norm>') takes no interventions")
        norm = "none" if base == ORACLE else base[len(ORACLE) + 1:]
        if norm not in norms:
            raise ValueError(f"arm {name!r}: {norm!r} is not a norm; norms: {', '.join(norms)}")
        return RLArm(name, norm, (), True)
    if base not in norms:
        raise ValueError(f"arm {name!r}: {base!r} is not a norm or {ORACLE!r}; norms: {', '.join(norms)}")
    return RLArm(name, base, tuple(specs), False)


def parse_rl_arms(texts) -> list[RLArm]:
    """Arms from strings, with the oracle and the plain agent first (added when missing);
    arms that share a run directory are a ValueError."""
    arms = [parse_rl_arm(t) for t in texts]
    rest = [a for a in arms if a.name not in (ORACLE, PLAIN)]
    arms = [parse_rl_arm(ORACLE), parse_rl_arm(PLAIN)] + rest
    names = [a.dirname for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"arms given twice (or differing only in punctuation): {dup}")
    return arms


#: The arms of the committed results: the two references, the norms with their own
#: fresh-agent references, and three interventions (ReDo every 64 updates, about four
#: times per visit of the default problem; L2-init at the library's λ = 1e-2 and at 1e-4;
#: shrink & perturb with the library defaults).
DEFAULT_RL_ARMS = ("fresh", "none", "layernorm", "nap", "none+redo:every=64", "none+l2_init", "none+shrink_perturb",
                   "fresh-layernorm", "fresh-nap", "none+l2_init:lam=1e-4")


@dataclass
class RLPlan:
    """What to run: ``problem`` × ``arms`` × ``seeds`` under ``root``, on ``device``
    (``"cpu"``, ``"cuda"`` or ``"auto"``)."""

    root: Path
    problem: RLProblem
    arms: list[RLArm] = field(default_factory=lambda: parse_rl_arms(DEFAULT_RL_ARMS))
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.seeds:
            raise ValueError("seeds must not be empty")

    def run_dir(self, arm: RLArm, seed: int) -> Path:
        """The run directory of one (arm, seed)."""
        return self.root / self.problem.name / arm.dirname / f"seed{seed}"

    def run_kwargs(self, arm: RLArm, seed: int, resume: bool) -> dict[str, Any]:
        """The :func:`train_rl_arm` keywords of one run."""
        return {"problem": asdict(self.problem), "arm": arm.to_dict(), "seed": seed,
                "logdir": str(self.run_dir(arm, seed)), "resume": resume, "device": self.device}


def train_rl_arm(problem: dict, arm: dict, seed: int, logdir: str, resume: bool = False, device: str = "cpu") -> dict:
    """One run (a top-level function, so a worker process can run it): the problem's
    stream with the arm's norm and interventions (the oracle: a fresh agent per visit),
    then :func:`finalize_run`. Returns the final summary."""
    from normrl.runs.stream import train_stream

    p = RLProblem(**problem)
    overrides = {**p.overrides, "seed": seed, "norm": arm["norm"], "interventions": tuple(arm["interventions"])}
    t0 = time.perf_counter()
    summary = train_stream(p.stream, p.algo, p.steps_per_task, logdir, cycles=p.cycles, overrides=overrides,
                           env_kwargs=p.env_kwargs, device=device, resume=resume, eval_episodes=p.eval_episodes,
                           eval_epsilon=p.eval_epsilon,
                           checkpoint_every=p.steps_per_task, progress=False, fresh_agent=bool(arm["fresh"]),
                           eval_tasks="current")
    if summary.get("signal") is not None:
        return summary
    return finalize_run(logdir, p.name, arm, seed, wall_seconds=time.perf_counter() - t0)


def finalize_run(logdir: str | Path, problem: str, arm: dict, seed: int, wall_seconds: float | None = None) -> dict:
    """Add the per-visit records and the run's identity to a finished stream run's
    ``summary.json`` (module docstring) and return it. ``wall_seconds`` adds to what an
    earlier, interrupted part of the run recorded."""
    from normrl.analysis.plasticity_rl_report import run_records
    from normrl.utils.run_dir import write_summary

    path = Path(logdir) / "summary.json"
    summary = json.loads(path.read_text())
    if not (summary.get("continual") or {}).get("completed"):
        raise ValueError(f"{logdir}: the stream run is not finished")
    wall = float(summary.get("wall_seconds", 0.0)) + float(wall_seconds or 0.0)
    summary.update({"finished": True, "kind": "rl", "problem": problem, "arm": dict(arm), "config": {"seed": int(seed)},
                    "wall_seconds": wall, "tasks": run_records(logdir)})
    write_summary(logdir, summary)
    return summary


def _check_budget(run_dir: Path, problem: RLProblem) -> None:
    config = run_dir / "config.json"
    if not config.is_file():
        return
    try:
        saved = json.loads(config.read_text())["continual"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    planned = {"stream": problem.stream, "steps_per_task": problem.steps_per_task, "cycles": problem.cycles,
               "eval_episodes": problem.eval_episodes, "eval_epsilon": problem.eval_epsilon}
    saved = {**LATER_RESUME_KEYS, **saved}  # the values of runs saved before those options existed
    diff = [f"{k}: saved {saved.get(k)!r}, planned {v!r}" for k, v in planned.items() if saved.get(k) != v]
    if diff:
        raise ValueError(f"{run_dir} holds a run of another configuration ({'; '.join(diff)}); use another --root")


def run_rl_plasticity(plan: RLPlan, jobs: int = 2, echo: Callable[[str], Any] = print) -> dict[tuple[str, int], int]:
    """Run every (arm, seed) of ``plan`` not finished yet, ``jobs`` processes at a time
    (one torch thread each); finish the bookkeeping of stream runs that completed
    without it. Returns ``{(arm name, seed): exit status}`` (0 for skipped runs)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    todo: list[Job] = []
    keys: dict[str, tuple[str, int]] = {}
    status: dict[tuple[str, int], int] = {}
    for seed in plan.seeds:  # seed-major: an interrupted plan still has every arm's first seeds
        for arm in plan.arms:
            d = plan.run_dir(arm, seed)
            _check_budget(d, plan.problem)
            state = run_status(d)
            if state == DONE:
                summary = json.loads((d / "summary.json").read_text())
                if summary.get("finished") is not True or "tasks" not in summary:
                    finalize_run(d, plan.problem.name, arm.to_dict(), seed)
                status[(arm.name, seed)] = 0
                echo(f"skip {arm.name} seed {seed}: finished")
                continue
            if state == FRESH and d.exists():
                shutil.rmtree(d)
            name = f"{arm.name} seed {seed}{'' if state == FRESH else ' (resume)'}"
            keys[name] = (arm.name, seed)
            todo.append(Job(name, train_rl_arm, plan.run_kwargs(arm, seed, resume=state != FRESH), d / "worker.log"))
    for name, code in run_local_jobs(todo, jobs, echo=echo).items():
        status[keys[name]] = code
    return status
