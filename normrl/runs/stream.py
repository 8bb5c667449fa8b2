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

``resume=True`` continues from the latest checkpoint exactly (same remaining task
sequence and step counts). Without it, a run directory that already holds checkpoints
is refused rather than overwritten. Missing, corrupt or incompatible checkpoints
(another stream, algorithm, option set or agent config) raise
:class:`~normrl.utils.errors.CheckpointError`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from normrl.runs.checkpoints import has_checkpoint, load_latest, restore_agent, save_checkpoint
from normrl.runs.device import resolve_device
from normrl.runs.resume import check_same_config, check_same_options
from normrl.runs.signals import StopSignals
from normrl.runs.single import agent_class, make_config
from normrl.utils.errors import CheckpointError, UserError

#: env steps between progress-bar refreshes (training runs in chunks of at most this)
PROGRESS_EVERY = 8192
#: Options that must match between a run and its resumption.
RESUME_KEYS = ("stream", "algo", "norm", "steps_per_task", "cycles", "seed", "num_envs", "reset_optimizer",
               "restart_lr", "flush_replay", "eval_episodes", "eval_epsilon", "chunk_steps", "env_kwargs")
#: ε-greedy evaluation of a new ``train_stream`` run unless told otherwise (see its docstring)
EVAL_EPSILON = 0.05
_RESTART_LR = {"auto": None, "yes": True, "no": False}


def _validate(steps_per_task, cycles, eval_episodes, checkpoint_every, restart_lr, eval_epsilon) -> None:
    if isinstance(eval_epsilon, bool) or not isinstance(eval_epsilon, (int, float)) or not 0.0 <= eval_epsilon <= 1.0:
        raise UserError(f"--eval-epsilon must be in [0, 1], got {eval_epsilon!r}")
    for flag, value, low in (("steps-per-task", steps_per_task, 1), ("cycles", cycles, 1),
                             ("eval-episodes", eval_episodes, 0), ("checkpoint-every", checkpoint_every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"--{flag} must be >= {low}, got {value!r}")
    if restart_lr not in _RESTART_LR:
        raise UserError(f"restart_lr must be one of {', '.join(_RESTART_LR)}, got {restart_lr!r}")


def train_stream(stream: str, algo: str, steps_per_task: int, logdir: str | Path, *, cycles: int = 1,
                 config: Any = None, overrides: dict | None = None, env_kwargs: dict | None = None,
                 device: str = "auto", resume: bool = False, eval_episodes: int = 10,
                 eval_epsilon: float | None = None, reset_optimizer: bool = False,
                 restart_lr: str = "auto", flush_replay: bool = False, checkpoint_every: int = 50_000,
                 progress: bool = True) -> dict[str, Any]:
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
    """
    from normrl.continual import TaskScheduler, stream_tasks

    if eval_epsilon is None:
        eval_epsilon = _saved_eval_epsilon(logdir) if resume else EVAL_EPSILON
    _validate(steps_per_task, cycles, eval_episodes, checkpoint_every, restart_lr, eval_epsilon)
    dev, logdir = resolve_device(device), Path(logdir)
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
               "chunk_steps": min(checkpoint_every, PROGRESS_EVERY), "env_kwargs": dict(env_kwargs or {})}
    scheduler = TaskScheduler(
        tasks, cycles, name=stream, num_envs=config.num_envs, device=dev, seed=config.seed,
        reset_optimizer=reset_optimizer, restart_lr=_RESTART_LR[restart_lr], flush_replay=flush_replay,
        eval_episodes=eval_episodes, eval_epsilon=float(eval_epsilon), chunk_steps=options["chunk_steps"], logdir=str(logdir),
        learn_kwargs={"progress": False})
    if config.schedule_horizon == 0:
        # The agents' default LR horizon is their first learn() call, which here is one
        # chunk: decay over each task when the schedule restarts per task, else over the
        # whole stream.
        config.schedule_horizon = steps_per_task if _RESTART_LR[restart_lr] else scheduler.total_steps()
    saved = _prepare_resume(logdir, scheduler, options, config) if resume else None
    if saved is None:
        from normrl.utils.run_dir import write_config

        write_config(logdir, config, continual=options, algo=algo)
    elif scheduler.done:
        return {"stream": stream, "cycles": cycles, "continual": scheduler.result().to_dict(), "already_complete": True,
                "signal": None}
    return _run(logdir, scheduler, algo, config, dev, saved, checkpoint_every, progress)


def _saved_eval_epsilon(logdir) -> float:
    """The ε the run in ``logdir`` evaluated with (0.0 if it predates the option)."""
    from normrl.runs.resume import saved_section

    return float(saved_section(logdir, "continual", "options").get("eval_epsilon", 0.0))


def _prepare_resume(logdir: Path, scheduler, options: dict, config) -> tuple[Path, dict]:
    """Check a resumed run against the saved one and restore the scheduler's position."""
    folder, state = load_latest(logdir)
    check_same_options(logdir, "continual", options, RESUME_KEYS, missing={"eval_epsilon": 0.0})
    check_same_config(logdir, config)
    try:
        scheduler.load_state_dict(state["scheduler"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"--resume: checkpoint does not match this stream: {exc}") from exc
    return folder, state


def _run(logdir: Path, scheduler, algo: str, config, device, saved, checkpoint_every: int, progress: bool) -> dict:
    env = scheduler.make_visit_env(device)
    agent = agent_class(algo)(env, config, logdir=str(logdir))
    if saved is not None:
        restore_agent(agent, *saved)
    # Mid-visit, the agent continues on the env it was restored into. At a visit boundary
    # the next visit starts on a freshly made env, exactly as in an uninterrupted run (the
    # construction env then only carried the restored state of the previous visit's env).
    visit_env = env if (saved is None or scheduler.started) else None
    bar = _progress_bar(scheduler) if progress else None
    last_saved = [scheduler.steps_completed()]
    with StopSignals(on_signal=lambda _: scheduler.request_stop()) as stop:
        def checkpoint(sched, ag):
            # Called after every training chunk and after each visit's evaluation; saves at
            # visit boundaries, on a signal, and every checkpoint_every steps.
            done = sched.steps_completed()
            if stop.requested or not sched.started or done - last_saved[0] >= checkpoint_every:
                save_checkpoint(logdir, ag, {"scheduler": sched.state_dict()})
                last_saved[0] = done
            _refresh(bar, sched, ag)

        try:
            scheduler.run(agent, callback=checkpoint, env=visit_env)
        finally:
            if visit_env is None:
                env.close()
            if bar is not None:
                bar.close()
            if agent.writer is not None:
                agent.writer.flush()
    return _finish(logdir, scheduler, agent, stop.first)


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


def _finish(logdir: Path, scheduler, agent, signum: int | None) -> dict:
    """Write and return ``summary.json``: the matrix, the agent's summary, the stop
    signal and the run's time split (training vs evaluation, over every resume)."""
    from normrl.utils.run_dir import write_summary

    summary = {"stream": scheduler.name, "cycles": scheduler.cycles, "continual": scheduler.result().to_dict(),
               "agent": agent.summary(), "train_seconds": scheduler.train_seconds,
               "eval_seconds": scheduler.eval_seconds, "signal": signum}
    write_summary(logdir, summary)
    return summary
