"""``train_seeds``: several seeds of one PPO configuration trained as one stacked run in
one process (the seed axis, :class:`~normrl.agents.ppo.stacked.StackedPPO`) — the code
path behind ``normrl train --seeds 0-15`` and ``PPOConfig(num_seeds=S)``.

Each seed k gets the run directory ``LOGDIR/seed_<k>/`` that a single run with seed k
(:func:`~normrl.runs.single.train_single`) writes: ``config.json`` (its config with
``seed=k``, ``num_seeds=1``; the ``"run"`` block adds ``"seed_axis": {"seeds": [...]}``),
TensorBoard events, checkpoints and ``summary.json`` (``train_seconds`` is the wall time
of the whole stacked run; ``seed_axis`` adds the aggregate steps/s). A seed whose
training diverges stops the whole stacked run: its summary says ``status: "diverged"``
(no checkpoint of it is written), the other seeds' say ``"stopped"`` with their
checkpoints (or ``"diverged"`` too when their parameters are no longer finite), and :class:`~normrl.utils.errors.TrainingDiverged` is raised. A seed's directory
can be continued on its own as a single run (``normrl train --seed k --logdir
LOGDIR/seed_<k> --resume``); resuming the stacked run as a whole is not supported yet.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

from normrl.runs.checkpoints import has_checkpoint, save_checkpoint
from normrl.runs.device import resolve_device
from normrl.runs.outcome import divergence_report, finish_status
from normrl.runs.chunks import train_in_chunks
from normrl.runs.signals import StopSignals
from normrl.runs.single import _check_positive, make_config
from normrl.utils.errors import TrainingDiverged, UserError
from normrl.utils.run_dir import check_logdir


def seed_logdir(logdir: str | Path, seed: int) -> Path:
    """``logdir/seed_<seed>``: the run directory of one seed of a stacked run."""
    return Path(logdir) / f"seed_{seed}"


def check_seed_list(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list of distinct non-negative ints (UserError otherwise)."""
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise UserError(f"seeds must be a non-empty list of non-negative ints, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds must not repeat, got {seeds!r}")
    return seeds


def train_seeds(algo: str, env_id: str, steps: int, logdir: str | Path, seeds: Sequence[int], *, config: Any = None,
                overrides: dict | None = None, env_kwargs: dict | None = None, device: str = "cpu",
                checkpoint_every: int = 100_000, progress_every: int = 10_000, progress: bool = True) -> dict[str, Any]:
    """Train one agent per seed in ``seeds`` for ``steps`` env steps each, stacked;
    return ``{"seeds", "logdirs", "summaries", "train_seconds",
    "aggregate_steps_per_second", "signal"}``.

    Args as :func:`~normrl.runs.single.train_single` (``config``/``overrides`` give the
    config every seed shares; its ``seed`` and ``num_seeds`` are replaced per seed).
    Only ``algo="ppo"`` and what :class:`~normrl.agents.ppo.stacked.StackedPPO`
    supports (CartPole and MinAtar envs, norms without running statistics); anything
    else is a UserError before the first step. A SIGINT/SIGTERM stops after the current
    chunk and checkpoints every seed.
    """
    if algo != "ppo":
        raise UserError(f"the seed axis (--seeds, num_seeds > 1) supports algo 'ppo' only so far, got {algo!r}; "
                        "train the seeds as separate runs")
    seeds = check_seed_list(seeds)
    _check_positive(steps=steps, checkpoint_every=checkpoint_every, progress_every=progress_every)
    config = make_config(algo, env_id, config, overrides)
    if config.schedule_horizon == 0:
        config.schedule_horizon = steps
    config = dataclasses.replace(config, num_seeds=1)
    config.validate()
    logdir, env_kwargs = check_logdir(logdir), dict(env_kwargs or {})
    for s in seeds:
        if has_checkpoint(seed_logdir(logdir, s)):
            raise UserError(f"{seed_logdir(logdir, s)} already holds a run's checkpoint; choose another --logdir "
                            "(a seed's directory can be continued alone as a single run with --resume)")
    dev = resolve_device(device)

    import torch

    from normrl.agents import PPO
    from normrl.agents.ppo.stacked import StackedPPO
    from normrl.envs import make_env
    from normrl.utils.run_dir import write_config, write_summary

    configs = [dataclasses.replace(config, seed=s) for s in seeds]
    agents = [PPO(make_env(env_id, config.num_envs, dev, seed=s, **env_kwargs), c, logdir=str(seed_logdir(logdir, s)))
              for s, c in zip(seeds, configs)]
    try:
        stacked = StackedPPO(agents)
    except ValueError:
        for a in agents:
            a.close()
        raise
    for s, c in zip(seeds, configs):
        options = {"env_id": env_id, "algo": algo, "norm": c.norm, "seed": s, "steps": steps, "num_envs": c.num_envs,
                   "env_kwargs": env_kwargs, "seed_axis": {"seeds": seeds}}
        write_config(seed_logdir(logdir, s), c, run=options, threads=torch.get_num_threads(), device=str(dev))
    t0 = time.perf_counter()
    stop, diverged = StopSignals(), None
    try:
        with stop:
            _train_in_chunks(stacked, logdir, seeds, steps, checkpoint_every, progress_every, progress, stop,
                             f"ppo {env_id} {config.norm} x{len(seeds)} seeds")
    except TrainingDiverged as exc:  # one seed diverged: it stops all, as it would stop its single run
        diverged = divergence_report(exc, seed_logdir(logdir, exc.facts["seed"]))
    wall = time.perf_counter() - t0
    summaries, failed = [], {}
    for s, a in zip(seeds, agents):
        if diverged is None or diverged.facts["seed"] != s:
            try:
                save_checkpoint(seed_logdir(logdir, s), a)
            except TrainingDiverged as exc:  # non-finite parameters, found by the save (its last good one stays)
                failed[s] = divergence_report(exc, seed_logdir(logdir, s))
                diverged = diverged or failed[s]
        a.close()
        a.env.close()
    trained = stacked.num_steps  # each seed's (they started at 0)
    aggregate = len(seeds) * trained / wall if wall > 0 else None
    for s, a in zip(seeds, agents):
        summary = a.summary()
        summary.update(norm=config.norm, seed=s, device=str(dev), num_envs=config.num_envs, train_seconds=wall,
                       eval_seconds=0.0, steps_per_second=trained / wall if wall > 0 else None, trained_steps=trained,
                       finished=diverged is None and a.num_steps >= steps, signal=stop.first,
                       seed_axis={"seeds": seeds, "aggregate_steps_per_second": aggregate})
        summary["status"] = finish_status(summary["finished"])
        if diverged is not None:
            summary["seed_axis"]["stopped_by_divergence_of_seed"] = diverged.facts.get("seed")
            if diverged.facts.get("seed") == s:
                summary["status"], summary["divergence"] = "diverged", diverged.facts
            elif s in failed:
                summary["status"], summary["divergence"] = "diverged", {**failed[s].facts, "seed": s}
        write_summary(seed_logdir(logdir, s), summary)
        summaries.append(summary)
    if diverged is not None:
        raise diverged
    return {"seeds": seeds, "logdirs": [str(seed_logdir(logdir, s)) for s in seeds], "summaries": summaries,
            "train_seconds": wall, "aggregate_steps_per_second": aggregate, "signal": stop.first}


def _train_in_chunks(stacked, logdir: Path, seeds: list, steps: int, checkpoint_every: int, progress_every: int,
                     progress: bool, stop: StopSignals, desc: str) -> None:
    """``stacked.learn`` in chunks (:func:`~normrl.runs.chunks.train_in_chunks`; steps per
    seed, the bar's steps/s aggregated over seeds, its return the mean over seeds), every
    seed checkpointed into its own directory."""
    def save():
        for s, a in zip(seeds, stacked.agents):
            save_checkpoint(seed_logdir(logdir, s), a)

    def recent_return():
        means = [a.episode_log.recent_mean_return for a in stacked.agents if a.episode_log.recent_returns]
        return sum(means) / len(means) if means else float("nan")

    train_in_chunks(stacked.learn, lambda: stacked.num_steps, stacked.seed_batch_size, steps,
                    checkpoint_every=checkpoint_every, progress_every=progress_every, progress=progress, stop=stop,
                    desc=desc, save=save, recent_return=recent_return, steps_per_count=len(seeds))
