"""``normrl train``: train PPO or DQN on one env; flags generated from the config.

Every field of :class:`~normrl.agents.PPOConfig` / :class:`~normrl.agents.DQNConfig`
is a flag (``learning_rate`` -> ``--learning-rate``; booleans as ``--x/--no-x``;
tuples as several values); unset flags keep the env's preset
(:mod:`normrl.agents.presets`). The run directory gets ``config.json`` before the
first step, TensorBoard events during training, and ``summary.json`` at the end.
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from normrl.commands._config_flags import add_config_flags, config_flag_values

NAME = "train"
HELP = "train PPO or DQN on one environment (TensorBoard logs, config.json, summary.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", required=True, choices=("ppo", "dqn"), help="algorithm")
    parser.add_argument("--env", required=True, help="env id, e.g. CartPole-v1, MinAtar/Breakout, ALE/Pong-v5")
    parser.add_argument("--norm", default="none", help="registered norm name for the networks (see `normrl norms`) [none]")
    parser.add_argument("--steps", type=int, required=True, help="env steps to train")
    parser.add_argument("--num-envs", type=int, default=None, help="parallel sub-envs [the env preset's]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the env, networks and sampling [0]")
    parser.add_argument("--device", default="cpu", help="torch device [cpu]")
    parser.add_argument("--logdir", default=None, help="run directory [runs/<algo>_<env>_<norm>_s<seed>_<time>]")
    parser.add_argument("--checkpoint", default=None, help="save the agent here at the end")
    parser.add_argument("--resume", default=None, help="load this checkpoint before training")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads; 1 is usually fastest for small networks on a shared machine [0: torch's default]")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser)


def run(args) -> int:
    import torch

    from normrl.agents.presets import preset_config
    from normrl.envs import make_env
    from normrl.normalization.registry import get_norm_layer
    from normrl.utils.errors import UserError
    from normrl.utils.run_dir import write_config, write_summary

    given = config_flag_values(args)
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.num_envs is not None:
        given["num_envs"] = args.num_envs
    if args.norm.lower() != "none":
        get_norm_layer(args.norm)  # ValueError listing the valid names
    config = preset_config(args.algo, args.env, seed=args.seed, norm=args.norm, **given).validate()
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UserError(f"bad --device {args.device!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available")
    logdir = Path(args.logdir) if args.logdir else Path("runs") / (
        f"{args.algo}_{re.sub(r'[^A-Za-z0-9.-]+', '-', args.env)}_{args.norm}_s{args.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    )
    env = make_env(args.env, config.num_envs, device, seed=args.seed)
    write_config(logdir, config, algo=args.algo, env=args.env, steps=args.steps, device=str(device), resume=args.resume,
                 threads=torch.get_num_threads())

    from normrl.agents import DQN, PPO

    agent = (PPO if args.algo == "ppo" else DQN)(env, config, logdir=logdir)
    if args.resume:
        agent.load(args.resume)
    start_steps = agent.num_steps
    t0 = time.perf_counter()
    agent.learn(args.steps, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    if args.checkpoint:
        agent.save(args.checkpoint)
    agent.close()
    summary = agent.summary()
    steps = agent.num_steps - start_steps
    summary.update(norm=args.norm, seed=args.seed, device=str(device), num_envs=config.num_envs,
                   wall_time_s=wall, steps_per_second=steps / wall if wall > 0 else None, trained_steps=steps)
    write_summary(logdir, summary)
    ret = summary["mean_return_last_100"]
    print(f"{args.algo} {args.env}: {agent.num_steps} steps in {wall:.1f}s ({steps / max(wall, 1e-9):,.0f} steps/s), "
          f"mean return (last 100 episodes) {'n/a' if ret is None else f'{ret:.2f}'}; logs in {logdir}")
    return 0
