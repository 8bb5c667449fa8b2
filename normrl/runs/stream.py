"""``train_stream``: one PPO/DQN agent trained on a continual task stream, resumably —
the code path behind ``normrl continual``, the sequential scripts and sweeps.

Runs :class:`normrl.continual.TaskScheduler` over a stream (docs/continual.md) and
returns the summary with the return matrix. The run directory receives ``config.json``
(before the first step), TensorBoard events, ``summary.json`` (after every task visit
and at the end, with ``train_seconds`` and ``eval_seconds``) and checkpoints
(:mod:`normrl.runs.checkpoints`), written every ``checkpoint_every`` env steps, after
every task visit, and on SIGINT/SIGTERM (the run stops after the current chunk, or
abandons a running evaluation, which the resumed run repeats; saves; and returns with
``summary["signal"]`` set).

``fresh_agent=True`` is the oracle of plasticity studies: a new agent (networks,
optimizer, LR schedule, replay buffer, interventions) at the start of every visit, built
with the run's config and the seed :func:`visit_agent_seed` (visit 0 keeps the run's
seed, so its first visit is exactly the continual run's), all logging into the run's one
TensorBoard directory along the stream's step axis (:class:`~normrl.runs.StepOffsetWriter`).

``resume=True`` continues from the latest checkpoint exactly (same remaining task
sequence and step counts). Without it, a run directory that already holds checkpoints
is refused rather than overwritten. Missing, corrupt or incompatible checkpoints
(another stream, algorithm, option set or agent config) raise
:class:`~normrl.utils.errors.CheckpointError`.

``summary.json`` has ``status`` (:mod:`normrl.runs.outcome`): a non-finite loss,
gradient norm or parameter stops the run without checkpointing the diverged agent,
writes ``status: "diverged"`` with the facts, and raises
:class:`~normrl.utils.errors.TrainingDiverged` naming them and the last good checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from normrl.runs.checkpoints import has_checkpoint, load_latest, restore_agent, save_checkpoint
from normrl.runs.device import resolve_device
from normrl.runs.resume import check_same_config, check_same_options, saved_section
from normrl.runs.outcome import divergence_report, finish_status
from normrl.runs.signals import StopSignals
from normrl.runs.single import agent_class, make_config
from normrl.utils.errors import CheckpointError, TrainingDiverged, UserError
from normrl.utils.run_dir import check_logdir

#: env steps between progress-bar refreshes (training runs in chunks of at most this)
PROGRESS_EVERY = 8192
#: Options that must match between a run and its resumption.
RESUME_KEYS = ("stream", "algo", "norm", "steps_per_task", "cycles", "seed", "num_envs", "reset_optimizer",
               "restart_lr", "flush_replay", "eval_episodes", "eval_epsilon", "chunk_steps", "env_kwargs",
               "fresh_agent", "eval_tasks")
#: Options added later: the values runs saved before them ran with (checked on resume).
LATER_RESUME_KEYS = {"eval_epsilon": 0.0, "fresh_agent": False, "eval_tasks": "seen"}
#: ε-greedy evaluation of a new ``train_stream`` run unless told otherwise (see its docstring)
EVAL_EPSILON = 0.05
_RESTART_LR = {"auto": None, "yes": True, "no": False}


def visit_agent_seed(seed: int, visit: int) -> int:
    """The agent seed of visit ``visit`` in ``fresh_agent`` mode: ``seed`` itself for
    visit 0 (the oracle's first visit is the continual run's), else a 63-bit hash of
    ``(seed, visit)``, so no visit of one run shares its initialization with any visit
    of another run seed."""
    if visit == 0:
        return int(seed)
    digest = hashlib.sha256(f"{int(seed)}/fresh-agent/{int(visit)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _validate(steps_per_task, cycles, eval_episodes, checkpoint_every, restart_lr, eval_epsilon) -> None:
    if isinstance(eval_epsilon, bool) or not isinstance(eval_epsilon, (int, float)) or not 0.0 <= eval_epsilon <= 1.0:
        raise UserError(f"--eval-epsilon must be in [0, 1], got {eval_epsilon!r}")
    for flag, value, low in (("steps-per-task", steps_per_task, 1), ("cycles", cycles, 1),
                             ("eval-episodes", eval_episodes, 0), ("checkpoint-every", checkpoint_every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"--{flag} must be >= {low}, got {value!r}")
    if restart_lr not in _RESTART_LR:
        raise UserError(f"restart_lr must be one of {', '.join(_RESTART_LR)}, got {restart_lr!r}")


def _validate_fresh(fresh_agent, reset_optimizer, restart_lr, flush_replay) -> None:
    if not isinstance(fresh_agent, bool):
        raise UserError(f"fresh_agent must be True or False, got {fresh_agent!r}")
    if fresh_agent and (reset_optimizer or restart_lr != "auto" or flush_replay):
        raise UserError("fresh_agent builds a new agent (optimizer, LR schedule, replay buffer) at every visit: "
                        "reset_optimizer, restart_lr and flush_replay do not apply to it")


def train_stream(stream: str, algo: str, steps_per_task: int, logdir: str | Path, *, cycles: int = 1,
                 config: Any = None, overrides: dict | None = None, env_kwargs: dict | None = None,
                 device: str = "auto", resume: bool = False, eval_episodes: int = 10,
                 eval_epsilon: float | None = None, reset_optimizer: bool = False,
                 restart_lr: str = "auto", flush_replay: bool = False, checkpoint_every: int = 50_000,
                 progress: bool = True, trust_checkpoint: bool = False, fresh_agent: bool = False,
                 eval_tasks: str = "seen") -> dict[str, Any]:
    """Train ``algo`` on the built-in stream ``stream`` (:func:`normrl.continual.stream_tasks`)
    and return the summary written to ``summary.json`` (``summary["continual"]`` is the
    return matrix; ``summary["signal"]`` the stop signal, if any).

    Args:
        config: the agent config [None: the first task's env preset]; ``overrides``
            (config fields, e.g. ``{"seed": 1, "norm": "nap"}``) apply on top. The
            config's ``seed`` also seeds the envs and the stream's permutations.
        env_kwargs: ``make_env`` keywords added to every task (e.g.
            ``{"max_episode_steps": 1000}``) [none].
        eval_episodes: episodes per task evaluation after every visit, all at once (one
            per sub-env of the evaluation env) [10].
        eval_epsilon: ε-greedy evaluation: the probability of a uniformly random action
            at each evaluation step, from a generator seeded per task evaluation
            (training's RNG is untouched); 0 is greedy [None: the saved run's value on
            resume (0.0 for runs saved before the option existed), else
            :data:`EVAL_EPSILON` = 0.05, the evaluation ε of Mnih et al. 2015 (Nature
            DQN): a greedy policy that stalls (a Seaquest sub that never leaves the
            surface) otherwise runs every evaluation to the stream's 10,000-step
            truncation, which made evaluation most of a MinAtar stream's wall time
            (docs/continual.md)].
        reset_optimizer, restart_lr (``"auto"``/``"yes"``/``"no"``), flush_replay:
            what happens at task switches (:func:`normrl.continual.apply_task_switch`).
        checkpoint_every: env steps between checkpoints [50,000].
        trust_checkpoint: with ``resume``, load a checkpoint whose pickle holds more
            than tensors and plain data with full unpickling, which can run code; only
            for files you trust [False].
        fresh_agent: the oracle: a new agent at every visit (module docstring); its LR
            schedule (``schedule_horizon`` 0) runs over one visit [False].
        eval_tasks: ``"seen"``: evaluate every task seen so far after each visit;
            ``"current"``: only the visit's own task (the matrix's diagonal) ["seen"].
    """
    from normrl.continual import TaskScheduler, stream_tasks
    from normrl.continual.scheduler import EVAL_TASKS

    if eval_epsilon is None:
        # without a checkpoint, resume fails below with "no checkpoint", not on config.json
        eval_epsilon = _saved_eval_epsilon(logdir) if resume and has_checkpoint(logdir) else EVAL_EPSILON
    _validate(steps_per_task, cycles, eval_episodes, checkpoint_every, restart_lr, eval_epsilon)
    _validate_fresh(fresh_agent, reset_optimizer, restart_lr, flush_replay)
    if eval_tasks not in EVAL_TASKS:
        raise UserError(f"eval_tasks must be one of {', '.join(EVAL_TASKS)}, got {eval_tasks!r}")
    dev, logdir = resolve_device(device), check_logdir(logdir)
    if has_checkpoint(logdir) and not resume:
        raise UserError(f"{logdir} already holds a run's checkpoints; pass --resume to continue it or choose another --logdir")
    seed = dict(overrides or {}).get("seed", getattr(config, "seed", 0))  # the config's seed: 0 by default
    tasks = stream_tasks(stream, steps_per_task, seed=seed, env_kwargs=env_kwargs)
    if tasks[0].env_id is None:
        raise UserError(f"stream {stream!r} is a supervised (dataset) stream; train_stream trains RL agents")
    # the first task's env preset (all tasks of a built-in stream share one env family)
    config = make_config(algo, tasks[0].env_id, config, overrides).validate()
    options = {"stream": stream, "algo": algo, "norm": config.norm, "steps_per_task": steps_per_task, "cycles": cycles,
               "seed": config.seed, "num_envs": config.num_envs, "reset_optimizer": reset_optimizer,
               "restart_lr": restart_lr, "flush_replay": flush_replay, "eval_episodes": eval_episodes,
               "eval_epsilon": float(eval_epsilon),
               # where PPO rollouts and checkpoints fall: a resumed run must keep it
               "chunk_steps": min(checkpoint_every, PROGRESS_EVERY), "env_kwargs": dict(env_kwargs or {}),
               "fresh_agent": fresh_agent, "eval_tasks": eval_tasks}
    if config.schedule_horizon == 0:
        # The agents' default LR horizon is their first learn() call, which here is one
        # chunk: decay over each task when the schedule restarts per task (or a fresh
        # agent lives for one task), else over the whole stream.
        per_task = _RESTART_LR[restart_lr] or fresh_agent
        config.schedule_horizon = steps_per_task if per_task else steps_per_task * len(tasks) * cycles
    factory = _FreshAgents(algo, config, logdir) if fresh_agent else None
    scheduler = TaskScheduler(
        tasks, cycles, name=stream, num_envs=config.num_envs, device=dev, seed=config.seed,
        reset_optimizer=reset_optimizer, restart_lr=_RESTART_LR[restart_lr], flush_replay=flush_replay,
        eval_episodes=eval_episodes, eval_epsilon=float(eval_epsilon), chunk_steps=options["chunk_steps"],
        logdir=str(logdir), learn_kwargs={"progress": False}, agent_factory=factory, eval_tasks=eval_tasks)
    saved = _prepare_resume(logdir, scheduler, options, config) if resume else None
    if saved is None:
        from normrl.utils.run_dir import write_config

        write_config(logdir, config, continual=options, algo=algo)
    elif scheduler.done:
        return {"stream": stream, "cycles": cycles, "continual": scheduler.result().to_dict(), "already_complete": True,
                "signal": None, "status": "finished"}
    if factory is not None:
        return _run_fresh(logdir, scheduler, factory, dev, saved, checkpoint_every, progress, trust_checkpoint)
    return _run(logdir, scheduler, algo, config, dev, saved, checkpoint_every, progress, trust_checkpoint)


class _FreshAgents:
    """The agent factory of ``fresh_agent`` mode: visit ``v``'s agent is built from the
    run's config with seed :func:`visit_agent_seed`, logging into the run's one
    TensorBoard writer shifted by the scheduler's ``step_offset``. ``current`` is the
    agent built last."""

    def __init__(self, algo: str, config, logdir: Path):
        self.algo, self.config, self.logdir = algo, config, logdir
        self.writer = None
        self.current = None

    def __call__(self, visit: int, env, step_offset: int):
        from normrl.runs.step_offset_writer import StepOffsetWriter

        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.logdir))
        config = dataclasses.replace(self.config, seed=visit_agent_seed(self.config.seed, visit))
        self.current = agent_class(self.algo)(env, config, writer=StepOffsetWriter(self.writer, step_offset))
        return self.current


def _saved_eval_epsilon(logdir) -> float:
    """The ε the run in ``logdir`` evaluated with (0.0 if it predates the option)."""
    return float(saved_section(logdir, "continual", "options").get("eval_epsilon", LATER_RESUME_KEYS["eval_epsilon"]))


def _prepare_resume(logdir: Path, scheduler, options: dict, config) -> tuple[Path, dict]:
    """Check a resumed run against the saved one and restore the scheduler's position."""
    folder, state = load_latest(logdir)
    check_same_options(logdir, "continual", options, RESUME_KEYS, missing=LATER_RESUME_KEYS)
    check_same_config(logdir, config)
    try:
        scheduler.load_state_dict(state["scheduler"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"--resume: checkpoint does not match this stream: {exc}") from exc
    return folder, state


def _run(logdir: Path, scheduler, algo: str, config, device, saved, checkpoint_every: int, progress: bool,
         trust_checkpoint: bool = False) -> dict:
    env = scheduler.make_visit_env(device)
    agent = agent_class(algo)(env, config, logdir=str(logdir))
    if saved is not None:
        restore_agent(agent, *saved, trusted=trust_checkpoint)
    # Mid-visit, the agent continues on the env it was restored into. At a visit boundary
    # the next visit starts on a freshly made env, exactly as in an uninterrupted run (the
    # construction env then only carried the restored state of the previous visit's env).
    visit_env = env if (saved is None or scheduler.started) else None
    bar = _progress_bar(scheduler) if progress else None
    with StopSignals(on_signal=lambda _: scheduler.request_stop()) as stop:
        checkpoint = _checkpointer(logdir, scheduler, stop, bar, checkpoint_every)
        try:
            scheduler.run(agent, callback=checkpoint, env=visit_env)
        except TrainingDiverged as exc:
            diverged = divergence_report(exc, logdir)
            _finish(logdir, scheduler, agent, stop.first, diverged)
            raise diverged from None
        finally:
            if visit_env is None:
                env.close()
            if bar is not None:
                bar.close()
            if agent.writer is not None:
                agent.writer.flush()
    return _finish(logdir, scheduler, agent, stop.first)


def _run_fresh(logdir: Path, scheduler, factory: _FreshAgents, device, saved, checkpoint_every: int,
               progress: bool, trust_checkpoint: bool = False) -> dict:
    """:func:`_run` for ``fresh_agent`` mode: the scheduler builds every visit's agent;
    a run resumed inside a visit rebuilds that visit's agent and restores it."""
    agent = visit_env = None
    if saved is not None and scheduler.started and not scheduler.done:
        visit_env = scheduler.make_visit_env(device)
        agent = factory(visit=scheduler.visit, env=visit_env, step_offset=scheduler.step_offset)
        restore_agent(agent, *saved, trusted=trust_checkpoint)
    bar = _progress_bar(scheduler) if progress else None
    with StopSignals(on_signal=lambda _: scheduler.request_stop()) as stop:
        checkpoint = _checkpointer(logdir, scheduler, stop, bar, checkpoint_every)
        try:
            scheduler.run(agent, callback=checkpoint, env=visit_env)
        except TrainingDiverged as exc:
            diverged = divergence_report(exc, logdir)
            _finish(logdir, scheduler, factory.current, stop.first, diverged)
            raise diverged from None
        finally:
            if bar is not None:
                bar.close()
            if factory.writer is not None:
                factory.writer.flush()
    summary = _finish(logdir, scheduler, factory.current, stop.first)
    if factory.writer is not None:
        factory.writer.close()
    return summary


def _checkpointer(logdir: Path, scheduler, stop: StopSignals, bar, checkpoint_every: int):
    """The scheduler's callback, called after every training chunk and after each
    visit's evaluation: saves at visit boundaries, on a signal, and every
    ``checkpoint_every`` steps, then refreshes the progress bar."""
    last_saved = [scheduler.steps_completed()]

    def checkpoint(sched, agent):
        done = sched.steps_completed()
        if stop.requested or not sched.started or done - last_saved[0] >= checkpoint_every:
            save_checkpoint(logdir, agent, {"scheduler": sched.state_dict()})
            last_saved[0] = done
        _refresh(bar, sched, agent)

    return checkpoint


def _progress_bar(scheduler):
    from tqdm.auto import tqdm

    return tqdm(total=scheduler.total_steps(), initial=scheduler.steps_completed(), unit="step", unit_scale=True,
                desc=f"continual {scheduler.name}", dynamic_ncols=True)


def _refresh(bar, scheduler, agent) -> None:
    if bar is None:
        return
    postfix = {"task": scheduler.current_task_id if not scheduler.done else "-"}
    log = agent.episode_log
    postfix["sps"] = f"{log.last_sps:,.0f}"
    if log.recent_returns:
        postfix["ret"] = f"{log.recent_mean_return:.2f}"
    bar.n = scheduler.steps_completed()
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()


def _finish(logdir: Path, scheduler, agent, signum: int | None, diverged: TrainingDiverged | None = None) -> dict:
    """Write and return ``summary.json``: the matrix, the agent's summary, the stop
    signal, the status (with the divergence facts when it diverged) and the run's time
    split (training vs evaluation, over every resume)."""
    from normrl.utils.run_dir import write_summary

    summary = {"stream": scheduler.name, "cycles": scheduler.cycles, "continual": scheduler.result().to_dict(),
               "agent": None if agent is None else agent.summary(), "train_seconds": scheduler.train_seconds,
               "eval_seconds": scheduler.eval_seconds, "signal": signum, "fresh_agent": scheduler.fresh_agents,
               "status": "diverged" if diverged is not None else finish_status(scheduler.done)}
    if diverged is not None:
        summary["divergence"] = diverged.facts
    write_summary(logdir, summary)
    return summary
