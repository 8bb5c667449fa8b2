"""Resumable training of one agent on one game: the loop behind
``scripts/train_atari.py`` and ``scripts/train_minatar.py``.

The agent's own ``learn`` does the training; this module only calls it in chunks so
that it can show one progress bar (env steps/s and the mean return of the last 100
episodes), write a checkpoint every ``checkpoint_every`` env steps and on
SIGINT/SIGTERM, and continue exactly with ``resume=True``.

Run directory (``logdir``): ``config.json`` before the first step (the agent config
plus a ``"run"`` block of the script options), TensorBoard events (the agent's tags,
docs/metrics.md), ``checkpoint.pt`` (:meth:`normrl.agents.PPO.save` format, atomic),
and ``summary.json`` at the end or at a signal stop (the agent's summary plus
``wall_time_s``, ``steps_per_second``, ``trained_steps``, ``finished``).
"""
from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

CHECKPOINT = "checkpoint.pt"
#: Options that must be the same when a run is resumed.
RESUME_KEYS = ("env_id", "algo", "norm", "seed", "steps", "num_envs", "env_kwargs")


def _granularity(algo: str, config) -> int:
    """Env steps of one ``learn`` unit (PPO rollout / DQN batched step)."""
    return config.num_envs * config.num_steps if algo == "ppo" else config.num_envs


def train_game(env_id: str, algo: str, *, steps: int, logdir: str | Path, norm: str = "none", seed: int = 0,
               device: str = "cpu", config_overrides: dict | None = None, env_kwargs: dict | None = None,
               resume: bool = False, checkpoint_every: int = 100_000, progress_every: int = 10_000,
               progress: bool = True) -> dict:
    """Train ``algo`` (``"ppo"`` / ``"dqn"``) with ``norm`` on ``env_id`` for ``steps``
    env steps in total and return the summary written to ``summary.json``.

    Args:
        config_overrides: agent config fields over the library preset of ``env_id``
            (:func:`normrl.agents.presets.preset_config`) [none].
        env_kwargs: ``make_env`` keywords of the training env [none].
        resume: continue the run in ``logdir`` from its ``checkpoint.pt`` (same
            options; :class:`~normrl.utils.errors.CheckpointError` otherwise). Without
            it, a ``logdir`` that holds a checkpoint is refused, never overwritten.
        checkpoint_every: env steps between checkpoints [100,000].
        progress_every: env steps between progress-bar updates (rounded up to whole
            PPO rollouts) [10,000].

    A SIGINT/SIGTERM stops training after the current chunk, saves the checkpoint and
    returns the summary with ``finished=False`` and ``signal`` set.
    """
    import torch

    from normrl.agents import DQN, PPO
    from normrl.agents.presets import preset_config
    from normrl.envs import make_env
    from normrl.utils.errors import CheckpointError, UserError
    from normrl.utils.run_dir import write_config, write_summary

    if steps < 1:
        raise UserError(f"--steps must be >= 1, got {steps}")
    if checkpoint_every < 1 or progress_every < 1:
        raise UserError("--checkpoint-every and the progress interval must be >= 1")
    if norm.lower() != "none":
        from normrl.normalization.registry import get_norm_layer

        get_norm_layer(norm)  # ValueError listing the valid names
    env_kwargs = dict(env_kwargs or {})
    config = preset_config(algo, env_id, seed=seed, norm=norm, **(config_overrides or {}))
    if config.schedule_horizon == 0:
        config.schedule_horizon = steps  # chunked learn() calls: decay over the whole run
    config.validate()
    logdir = Path(logdir)
    ckpt = logdir / CHECKPOINT
    options = {"env_id": env_id, "algo": algo, "norm": norm, "seed": seed, "steps": steps,
               "num_envs": config.num_envs, "env_kwargs": env_kwargs}
    if resume:
        if not ckpt.is_file():
            raise CheckpointError(f"--resume: no checkpoint in {logdir} (missing {ckpt})")
        try:
            saved = json.loads((logdir / "config.json").read_text())["run"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"--resume: cannot read the run's options from {logdir / 'config.json'}: {exc}") from exc
        diff = [f"{k}: saved {saved.get(k)!r}, now {options[k]!r}" for k in RESUME_KEYS if saved.get(k) != options[k]]
        if diff:
            raise CheckpointError("--resume: options differ from the saved run (" + "; ".join(diff) + ")")
    elif ckpt.exists():
        raise UserError(f"{logdir} already holds a run's checkpoint; pass --resume to continue it or choose another --logdir")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"bad --device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available")

    env = make_env(env_id, config.num_envs, dev, seed=seed, **env_kwargs)
    if not resume:
        write_config(logdir, config, run=options, threads=torch.get_num_threads(), device=str(dev))
    agent = (PPO if algo == "ppo" else DQN)(env, config, logdir=str(logdir))
    if resume:
        agent.load(ckpt)
    unit = _granularity(algo, config)
    chunk = unit * math.ceil(progress_every / unit)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=min(agent.num_steps, steps), unit="step", unit_scale=True,
                   desc=f"{algo} {env_id} {norm}", dynamic_ncols=True)
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    start_steps, last_ckpt = agent.num_steps, agent.num_steps
    t0 = time.perf_counter()
    try:
        while agent.num_steps < steps and not received:
            before, tc = agent.num_steps, time.perf_counter()
            agent.learn(min(chunk, steps - agent.num_steps), progress=False)
            if agent.num_steps - last_ckpt >= checkpoint_every:
                agent.save(ckpt)
                last_ckpt = agent.num_steps
            if bar is not None:
                sps = (agent.num_steps - before) / max(time.perf_counter() - tc, 1e-9)
                log = agent.episode_log
                ret = log.recent_mean_return if log.recent_returns else float("nan")
                bar.n = min(agent.num_steps, steps)
                bar.set_postfix(sps=f"{sps:,.0f}", ret=f"{ret:.2f}", refresh=False)
                bar.refresh()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    agent.save(ckpt)
    agent.close()
    env.close()
    trained = agent.num_steps - start_steps
    summary = agent.summary()
    summary.update(norm=norm, seed=seed, device=str(dev), num_envs=config.num_envs, wall_time_s=wall,
                   steps_per_second=trained / wall if wall > 0 else None, trained_steps=trained,
                   finished=agent.num_steps >= steps, signal=received[0] if received else None)
    write_summary(logdir, summary)
    return summary
