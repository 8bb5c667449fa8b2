"""Sequential Atari: one agent trained on a list of ALE games in turn (full 18-action
set), resumable; a thin front-end over ``normrl continual --stream atari-...``.

Example::

    python scripts/sequential_atari.py --games Pong,Breakout --algo ppo --norm nap \\
        --steps-per-task 1000000 --cycles 2 --logdir runs/seq_atari_nap

``--games default`` is the ten-game stream ``atari-default`` (its source:
normrl/envs/streams.py). The run directory gets config.json, TensorBoard events,
summary.json (with the task-by-task return matrix) and checkpoints; Ctrl-C saves a
checkpoint and ``--resume`` continues exactly (docs/continual.md).
"""
import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sequential_atari.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--games", default="default", help="comma-separated ALE games, or 'default' (atari-default) [default]")
    p.add_argument("--algo", choices=("ppo", "dqn"), default="ppo",
                   help="agent [ppo] (dqn uses the library ALE preset: a 1M-transition replay buffer, 56 GB)")
    p.add_argument("--norm", default="nap", help="registered norm [nap]")
    p.add_argument("--steps-per-task", type=int, default=1_000_000, help="env steps per game visit [1000000]")
    p.add_argument("--cycles", type=int, default=1, help="passes over the games [1]")
    p.add_argument("--seed", type=int, default=0, help="seed [0]")
    p.add_argument("--num-envs", type=int, default=None, help="parallel envs [the ALE preset's]")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation [10]")
    p.add_argument("--device", default="auto", help="torch device [auto: cuda when available]")
    p.add_argument("--logdir", default=None, help="run directory [runs/seq_atari_<algo>_<norm>_s<seed>]")
    p.add_argument("--resume", action="store_true", help="continue the run in --logdir")
    p.add_argument("--checkpoint-every", type=int, default=250_000, help="env steps between checkpoints [250000]")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default [1]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def continual_argv(args) -> list[str]:
    """The ``normrl continual`` arguments these flags mean."""
    games = args.games.strip()
    stream = "atari-default" if games == "default" else "atari-" + ",".join(g.strip() for g in games.split(",") if g.strip())
    argv = ["continual", "--stream", stream, "--algo", args.algo, "--norm", args.norm,
            "--steps-per-task", str(args.steps_per_task), "--cycles", str(args.cycles), "--seed", str(args.seed),
            "--eval-episodes", str(args.eval_episodes), "--device", args.device,
            "--checkpoint-every", str(args.checkpoint_every),
            "--logdir", args.logdir or f"runs/seq_atari_{args.algo}_{args.norm}_s{args.seed}"]
    if args.num_envs is not None:
        argv += ["--num-envs", str(args.num_envs)]
    return argv + (["--resume"] if args.resume else []) + (["--no-progress"] if args.no_progress else [])


def main(argv=None) -> int:
    import torch

    from normrl.cli import main as cli_main

    args = build_parser().parse_args(argv)
    if args.threads < 0:
        build_parser().exit(2, f"sequential_atari.py: error: --threads must be >= 0, got {args.threads}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    return cli_main(continual_argv(args))


if __name__ == "__main__":
    sys.exit(main())
