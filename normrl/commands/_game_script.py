"""Command line of ``scripts/train_atari.py`` / ``scripts/train_minatar.py``: one game,
per-game presets (:func:`normrl.agents.presets.game_preset`), resumable
(:func:`normrl.runs.train_single`).

Flags: ``--game`` (required), ``--algo {dqn,ppo}``, ``--norm``, ``--steps`` (default: the
game preset's budget), ``--num-envs``, ``--seed``, ``--device``, ``--logdir``
(default ``runs/<family>_<game>_<algo>_<norm>_s<seed>``), ``--resume``,
``--trust-checkpoint``, ``--checkpoint-every``, ``--threads``, ``--no-progress``, and one
flag per agent config field (the same generated flags as ``normrl train``, e.g.
``--learning-rate``) that overrides the preset. Errors are one line with the exit
statuses of :mod:`normrl.commands._exit` (2: usage, 1: the run failed).
"""
from __future__ import annotations

import argparse

from normrl.commands._config_flags import add_config_flags, config_flag_values
from normrl.commands._exit import CommandParser, run_command


def build_parser(family: str) -> argparse.ArgumentParser:
    """The parser of the ``family`` (``"atari"`` / ``"minatar"``) training script."""
    example = "Pong" if family == "atari" else "breakout"
    default_algo = "dqn" if family == "atari" else "ppo"
    parser = CommandParser(
        prog=f"train_{family}.py",
        description=f"Train PPO or DQN on one {'Atari (ale-py)' if family == 'atari' else 'MinAtar'} game with "
                    "per-game presets (normrl.agents.presets), a progress bar, TensorBoard logs, "
                    "config.json, summary.json and resumable checkpoints.")
    parser.add_argument("--game", required=True, help=f"game name, e.g. {example}")
    parser.add_argument("--algo", choices=("dqn", "ppo"), default=default_algo, help=f"agent [{default_algo}]")
    parser.add_argument("--norm", default="none", help="registered norm (see `normrl norms`) [none]")
    parser.add_argument("--steps", type=int, default=None, help="total env steps [the game preset's budget]")
    parser.add_argument("--num-envs", type=int, default=None, help="parallel sub-envs [the preset's]")
    parser.add_argument("--seed", type=int, default=0, help="seed [0]")
    parser.add_argument("--device", default="cpu", help="torch device [cpu]")
    parser.add_argument("--logdir", default=None, help=f"run directory [runs/{family}_<game>_<algo>_<norm>_s<seed>]")
    parser.add_argument("--resume", action="store_true", help="continue the run in --logdir from its checkpoint")
    parser.add_argument("--trust-checkpoint", action="store_true", help="with --resume: load a checkpoint whose pickle holds more than tensors and plain data "
                        "with full unpickling, which can run code (only for files you trust)")
    parser.add_argument("--checkpoint-every", type=int, default=100_000, help="env steps between checkpoints [100000]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default [1]")
    parser.add_argument("--deterministic", action="store_true", help="CUDA: deterministic kernels (torch.use_deterministic_algorithms, CUBLAS_WORKSPACE_CONFIG); slower; see docs/reproducibility.md")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser)
    return parser


def run(family: str, args) -> dict:
    """Resolve the game preset and train; print one line; return the summary."""
    from normrl.agents.presets import game_preset
    from normrl.runs import train_single
    from normrl.runs.device import set_threads

    set_threads(args.threads)
    if args.deterministic:
        from normrl.runs.determinism import enable_deterministic

        enable_deterministic()
    preset = game_preset(family, args.game)
    overrides = {**config_flag_values(args), "seed": args.seed, "norm": args.norm}
    if args.num_envs is not None:
        overrides["num_envs"] = args.num_envs
    steps = preset["steps"] if args.steps is None else args.steps
    game = preset["env_id"].split("/")[1].removesuffix("-v5")
    logdir = args.logdir or f"runs/{family}_{game}_{args.algo}_{args.norm}_s{args.seed}"
    summary = train_single(args.algo, preset["env_id"], steps, logdir, overrides=overrides, env_kwargs=preset["env_kwargs"],
                           device=args.device, resume=args.resume, checkpoint_every=args.checkpoint_every,
                           progress=not args.no_progress, trust_checkpoint=args.trust_checkpoint,
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
    """Script entry point: exit status 0, 2 on a usage error, 1 when the run failed (e.g.
    diverged), 130/143 after a signal stop (:mod:`normrl.commands._exit`)."""
    from normrl.runs.signals import exit_status

    parser = build_parser(family)
    args = parser.parse_args(argv)
    summary = run_command(parser.prog, run, family, args)
    return 0 if summary["signal"] is None else exit_status(summary["signal"])
