"""Sequential Atari: one agent trained on a list of ALE games in turn (full 18-action
set), resumable; a thin front-end over :func:`normrl.runs.train_stream` (what
``normrl continual --stream atari-...`` runs).

Example::

    python scripts/sequential_atari.py --games Pong,Breakout --algo ppo --norm nap \\
        --steps-per-task 1000000 --cycles 2 --logdir runs/seq_atari_nap

``--games default`` is the ten-game stream ``atari-default`` (its source:
normrl/continual/streams.py). The run directory gets config.json, TensorBoard events,
summary.json (with the task-by-task return matrix) and checkpoints; Ctrl-C saves a
checkpoint and ``--resume`` continues exactly (docs/continual.md).
"""
import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from normrl.commands._exit import CommandParser

    p = CommandParser(prog="sequential_atari.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--games", default="default", help="comma-separated ALE games, or 'default' (atari-default) [default]")
    p.add_argument("--algo", choices=("ppo", "dqn"), default="ppo",
                   help="agent [ppo] (dqn uses the library ALE preset: a 100k-transition replay buffer, 5.6 GB)")
    p.add_argument("--norm", default="nap", help="registered norm [nap]")
    p.add_argument("--steps-per-task", type=int, default=1_000_000, help="env steps per game visit [1000000]")
    p.add_argument("--cycles", type=int, default=1, help="passes over the games [1]")
    p.add_argument("--seed", type=int, default=0, help="seed [0]")
    p.add_argument("--num-envs", type=int, default=None, help="parallel envs [the ALE preset's]")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation [10]")
    p.add_argument("--device", default="auto", help="torch device [auto: cuda when available]")
    p.add_argument("--logdir", default=None, help="run directory [runs/seq_atari_<algo>_<norm>_s<seed>]")
    p.add_argument("--resume", action="store_true", help="continue the run in --logdir")
    p.add_argument("--trust-checkpoint", action="store_true", help="with --resume: load a checkpoint whose pickle holds more than tensors and plain data with full unpickling, which can run code (only for files you trust)")
    p.add_argument("--checkpoint-every", type=int, default=250_000, help="env steps between checkpoints [250000]")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default [1]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def stream_name(games: str) -> str:
    """``atari-default`` for ``"default"``, else ``atari-<Game1>,<Game2>,...``."""
    games = games.strip()
    return "atari-default" if games == "default" else "atari-" + ",".join(g.strip() for g in games.split(",") if g.strip())


def run(args) -> dict:
    from normrl.runs import train_stream
    from normrl.runs.device import set_threads

    overrides = {"seed": args.seed, "norm": args.norm}
    if args.num_envs is not None:
        overrides["num_envs"] = args.num_envs
    set_threads(args.threads)
    return train_stream(stream_name(args.games), args.algo, args.steps_per_task,
                        args.logdir or f"runs/seq_atari_{args.algo}_{args.norm}_s{args.seed}", cycles=args.cycles,
                        overrides=overrides, device=args.device, resume=args.resume,
                        eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_every,
                        progress=not args.no_progress, trust_checkpoint=args.trust_checkpoint)


def main(argv=None) -> int:
    from normrl.commands._exit import run_command
    from normrl.continual.result import ContinualResult
    from normrl.runs.signals import exit_status

    parser = build_parser()
    args = parser.parse_args(argv)
    summary = run_command(parser.prog, run, args)
    if summary["signal"] is not None:
        return exit_status(summary["signal"])
    print(ContinualResult.from_dict(summary["continual"]).format_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
