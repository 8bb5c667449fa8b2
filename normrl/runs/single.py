"""``train_single``: one agent on one environment, resumable — the code path behind
``normrl train``, ``scripts/train_atari.py``, ``scripts/train_minatar.py`` and sweeps.

The agent's own ``learn`` does the training; this module calls it in chunks so that it
can show one progress bar (env steps/s and the mean return of the last 100 episodes),
checkpoint every ``checkpoint_every`` env steps and on SIGINT/SIGTERM, and continue
exactly with ``resume=True``.

Run directory (``logdir``): ``config.json`` before the first step (the agent config plus
a ``"run"`` block of the options), TensorBoard events (docs/metrics.md), checkpoints
(:mod:`normrl.runs.checkpoints`), and ``summary.json`` at the end or at a signal stop
(the agent's summary plus ``train_seconds``, ``eval_seconds``, ``steps_per_second``,
``trained_steps``, ``finished``, ``signal`` and ``status``: :mod:`normrl.runs.outcome`).

A non-finite loss, gradient norm or parameter (the agents' divergence guard) stops the
run: no checkpoint of the diverged agent is written, ``summary.json`` gets
``status: "diverged"`` and the facts, and :class:`~normrl.utils.errors.TrainingDiverged`
is raised naming them and the last good checkpoint.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from normrl.runs.checkpoints import has_checkpoint, load_latest, restore_agent, save_checkpoint
from normrl.runs.device import resolve_device
from normrl.utils.run_dir import check_logdir
from normrl.runs.resume import check_same_config, check_same_options
from normrl.runs.outcome import divergence_report, finish_status
from normrl.runs.chunks import train_in_chunks
from normrl.runs.signals import StopSignals
from normrl.utils.errors import TrainingDiverged, UserError

#: Options that must be the same when a run is resumed.
RESUME_KEYS = ("env_id", "algo", "norm", "seed", "steps", "num_envs", "env_kwargs")


def agent_class(algo: str):
    """``PPO`` or ``DQN`` for ``"ppo"`` / ``"dqn"`` (ValueError otherwise)."""
    from normrl.agents import DQN, PPO
    from normrl.agents.presets import config_class

    config_class(algo)
    return PPO if algo == "ppo" else DQN


def make_config(algo: str, env_id: str, config: Any = None, overrides: dict | None = None):
    """The agent config of a run: ``config`` (a PPOConfig/DQNConfig) or else the env's
    preset (:func:`normrl.agents.presets.preset_config`), with ``overrides`` applied;
    validated. The norm name is checked against the registry (ValueError listing the
    valid names)."""
    from normrl.agents.presets import config_class, preset_config
    from normrl.normalization.registry import norm_name

    overrides = dict(overrides or {})
    if config is None:
        config = preset_config(algo, env_id, **overrides)
    else:
        if not isinstance(config, config_class(algo)):
            raise UserError(f"config must be a {config_class(algo).__name__} for algo {algo!r}, got {type(config).__name__}")
        config = dataclasses.replace(config, **overrides)
    norm_name(config.norm)
    return config


def _check_positive(**values: int) -> None:
    for flag, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {value!r}")


def train_single(algo: str, env_id: str, steps: int, logdir: str | Path, *, config: Any = None,
                 overrides: dict | None = None, env_kwargs: dict | None = None, device: str = "cpu",
                 resume: bool = False, checkpoint_every: int = 100_000, progress_every: int = 10_000,
                 progress: bool = True, trust_checkpoint: bool = False) -> dict[str, Any]:
    """Train ``algo`` (``"ppo"``/``"dqn"``) on ``env_id`` for ``steps`` env steps in
    total; return the summary written to ``summary.json``.

    Args:
        config: the agent config [None: the env's preset]; ``overrides`` (config fields,
            e.g. ``{"seed": 1, "norm": "nap"}``) apply on top.
        env_kwargs: ``make_env`` keywords of the training env [none].
        device: torch device or ``"auto"`` ["cpu"].
        resume: continue the run in ``logdir`` from its latest checkpoint (same options
            and config, else :class:`~normrl.utils.errors.CheckpointError`). Without
            it, a ``logdir`` that holds a checkpoint is refused, never overwritten.
        checkpoint_every: env steps between checkpoints [100,000].
        progress_every: env steps between progress-bar updates and signal checks
            (rounded up to whole PPO rollouts) [10,000].
        trust_checkpoint: with ``resume``, load a checkpoint whose pickle holds more
            than tensors and plain data (e.g. from an old version) with full
            unpickling, which can run code; only for files you trust [False].

    A SIGINT/SIGTERM stops training after the current chunk, saves a checkpoint and
    returns the summary with ``finished=False`` and ``signal`` set.

    A config with ``num_seeds > 1`` trains seeds ``seed .. seed + num_seeds - 1`` as one
    stacked run and returns :func:`~normrl.runs.seeds.train_seeds`' result instead.
    """
    _check_positive(steps=steps, checkpoint_every=checkpoint_every, progress_every=progress_every)
    config = make_config(algo, env_id, config, overrides)
    if config.num_seeds > 1:
        from normrl.runs.seeds import train_seeds

        if resume:
            raise UserError("resuming a stacked run (num_seeds > 1) is not supported yet; continue one seed's directory "
                            "LOGDIR/seed_<k> as a single run")
        return train_seeds(algo, env_id, steps, logdir, range(config.seed, config.seed + config.num_seeds), config=config,
                           env_kwargs=env_kwargs, device=device, checkpoint_every=checkpoint_every,
                           progress_every=progress_every, progress=progress)
    if config.schedule_horizon == 0:
        config.schedule_horizon = steps  # chunked learn() calls: decay over the whole run
    config.validate()
    logdir, env_kwargs = check_logdir(logdir), dict(env_kwargs or {})
    options = {"env_id": env_id, "algo": algo, "norm": config.norm, "seed": config.seed, "steps": steps,
               "num_envs": config.num_envs, "env_kwargs": env_kwargs}
    if resume:
        folder, state = load_latest(logdir)
        check_same_options(logdir, "run", options, RESUME_KEYS)
        check_same_config(logdir, config)
    elif has_checkpoint(logdir):
        raise UserError(f"{logdir} already holds a run's checkpoint; pass --resume to continue it or choose another --logdir")
    dev = resolve_device(device)

    import torch

    from normrl.envs import make_env
    from normrl.utils.run_dir import write_config, write_summary

    env = make_env(env_id, config.num_envs, dev, seed=config.seed, **env_kwargs)
    if not resume:
        write_config(logdir, config, run=options, threads=torch.get_num_threads(), device=str(dev))
    agent = agent_class(algo)(env, config, logdir=str(logdir))
    if resume:
        restore_agent(agent, folder, state, trusted=trust_checkpoint)
    start_steps = agent.num_steps
    t0 = time.perf_counter()
    stop, diverged = StopSignals(), None
    try:
        with stop:
            _train_in_chunks(agent, logdir, steps, checkpoint_every, progress_every, progress, stop,
                             f"{algo} {env_id} {config.norm}")
        save_checkpoint(logdir, agent)
    except TrainingDiverged as exc:
        diverged = divergence_report(exc, logdir)
    wall = time.perf_counter() - t0
    agent.close()
    env.close()
    trained = agent.num_steps - start_steps
    summary = agent.summary()
    summary.update(norm=config.norm, seed=config.seed, device=str(dev), num_envs=config.num_envs, train_seconds=wall,
                   eval_seconds=0.0, steps_per_second=trained / wall if wall > 0 else None, trained_steps=trained,
                   finished=diverged is None and agent.num_steps >= steps, signal=stop.first)
    summary["status"] = "diverged" if diverged is not None else finish_status(summary["finished"])
    if diverged is not None:
        summary["divergence"] = diverged.facts
        write_summary(logdir, summary)
        raise diverged
    write_summary(logdir, summary)
    return summary


def _train_in_chunks(agent, logdir: Path, steps: int, checkpoint_every: int, progress_every: int, progress: bool,
                     stop: StopSignals, desc: str) -> None:
    """``agent.learn`` in chunks (:func:`~normrl.runs.chunks.train_in_chunks`), checkpointed
    into ``logdir``."""
    c = agent.config
    unit = c.num_envs * c.num_steps if agent.ALGO == "ppo" else c.num_envs  # env steps of one learn() unit
    log = agent.episode_log
    train_in_chunks(lambda n: agent.learn(n, progress=False), lambda: agent.num_steps, unit, steps,
                    checkpoint_every=checkpoint_every, progress_every=progress_every, progress=progress, stop=stop,
                    desc=desc, save=lambda: save_checkpoint(logdir, agent),
                    recent_return=lambda: log.recent_mean_return if log.recent_returns else float("nan"))
