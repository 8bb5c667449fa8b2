"""Command line of ``scripts/train_atari.py`` / ``scripts/train_minatar.py``.

Flags: ``--game`` (required), ``--algo {dqn,ppo}``, ``--norm``, ``--steps`` (default: the
game preset's budget), ``--num-envs``, ``--seed``, ``--device``, ``--logdir``
(default ``runs/<family>_<game>_<algo>_<norm>_s<seed>``), ``--resume``,
``--checkpoint-every``, ``--threads``, ``--no-progress``, and one flag per agent config
field (the same generated flags as ``normrl train``, e.g. ``--learning-rate``) that
overrides the preset. User errors are printed as one line with exit status 2.
"""
from __future__ import annotations

import argparse


def build_parser(family: str) -> argparse.ArgumentParser:
    """The parser of the ``family`` (``"atari"`` / ``"minatar"``) training script."""
    from normrl.commands._config_flags import add_config_flags

    example = "Pong" if family == "atari" else "breakout"
    parser = argparse.ArgumentParser(
        prog=f"train_{family}.py",
        description=f"Train PPO or DQN on one {'Atari (ale-py)' if family == 'atari' else 'MinAtar'} game with "
                    "per-game presets (normrl.experiments.presets), a progress bar, TensorBoard logs, "
                    "config.json, summary.json and resumable checkpoints.")
    parser.add_argument("--game", required=True, help=f"game name, e.g. {example}")
    parser.add_argument("--algo", choices=("dqn", "ppo"), default="dqn" if family == "atari" else "ppo",
                        help=f"agent [{'dqn' if family == 'atari' else 'ppo'}]")
    parser.add_argument("--norm", default="none", help="registered norm (see `normrl norms`) [none]")
    parser.add_argument("--steps", type=int, default=None, help="total env steps [the game preset's budget]")
    parser.add_argument("--num-envs", type=int, default=None, help="parallel sub-envs [the preset's]")
    parser.add_argument("--seed", type=int, default=0, help="seed [0]")
    parser.add_argument("--device", default="cpu", help="torch device [cpu]")
    parser.add_argument("--logdir", default=None, help=f"run directory [runs/{family}_<game>_<algo>_<norm>_s<seed>]")
    parser.add_argument("--resume", action="store_true", help="continue the run in --logdir from its checkpoint")
    parser.add_argument("--checkpoint-every", type=int, default=100_000, help="env steps between checkpoints [100000]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default [1]")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser)
    return parser


def run(family: str, args) -> dict:
    """Resolve the preset and train (see :func:`normrl.experiments.single_game.train_game`)."""
    import torch

    from normrl.commands._config_flags import config_flag_values
    from normrl.experiments.presets import atari_preset, minatar_preset
    from normrl.experiments.single_game import train_game
    from normrl.utils.errors import UserError

    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = (atari_preset if family == "atari" else minatar_preset)(args.game, args.algo)
    overrides = dict(preset["config"])
    given = config_flag_values(args)
    overrides.update(given)
    if args.num_envs is not None:
        if args.num_envs < 1:
            raise UserError(f"--num-envs must be >= 1, got {args.num_envs}")
        overrides["num_envs"] = args.num_envs
    steps = preset["steps"] if args.steps is None else args.steps
    game = preset["env_id"].split("/")[1].removesuffix("-v5")
    logdir = args.logdir or f"runs/{family}_{game}_{args.algo}_{args.norm}_s{args.seed}"
    summary = train_game(preset["env_id"], args.algo, steps=steps, logdir=logdir, norm=args.norm, seed=args.seed,
                         device=args.device, config_overrides=overrides, env_kwargs=preset["env_kwargs"],
                         resume=args.resume, checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                         # Atari DQN on a CPU runs at tens to hundreds of steps/s: update the bar
                         # (and honour a SIGINT/SIGTERM) every 2,000 steps rather than 10,000
                         progress_every=2_000 if family == "atari" else 10_000)
    ret = summary["mean_return_last_100"]
    state = "done" if summary["finished"] else f"stopped by signal {summary['signal']} (continue with --resume)"
    print(f"{args.algo} {preset['env_id']} norm={args.norm}: {summary['steps']} steps, {state}; "
          f"{summary['steps_per_second'] or 0:,.0f} steps/s; mean return (last 100 episodes) "
          f"{'n/a' if ret is None else f'{ret:.2f}'}; logs in {logdir}")
    return summary


def main(family: str, argv: list[str] | None = None) -> int:
    """Script entry point: exit status 0, 2 on a user error, 130/143 after a signal stop."""
    from normrl.utils.errors import UserError

    parser = build_parser(family)
    args = parser.parse_args(argv)
    try:
        summary = run(family, args)
    except (UserError, ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if summary["signal"] is not None:
        return 130 if summary["signal"] == 2 else 143
    return 0
