"""``normrl train``: train PPO or DQN on one env, resumably (:func:`normrl.runs.train_single`).

Every field of :class:`~normrl.agents.PPOConfig` / :class:`~normrl.agents.DQNConfig`
is a flag (``learning_rate`` -> ``--learning-rate``; booleans as ``--x/--no-x``;
tuples as several values); unset flags keep the env's preset
(:mod:`normrl.agents.presets`). The run directory gets ``config.json`` before the
first step, TensorBoard events and checkpoints during training, and ``summary.json`` at
the end; SIGINT/SIGTERM saves a checkpoint that ``--resume`` continues exactly.

``--seeds 0-15`` (or ``0,3,5``, or ``0-3,8``) trains those seeds of ``--algo ppo`` as one
stacked run in one process (:func:`normrl.runs.train_seeds`); seed k writes
``LOGDIR/seed_<k>/`` as a single run with ``--seed k`` would.
"""
from __future__ import annotations

import argparse
import re
import time

from normrl.commands._config_flags import add_config_flags, config_flag_values

NAME = "train"
HELP = "train PPO or DQN on one environment (TensorBoard logs, config.json, summary.json, resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", required=True, choices=("ppo", "dqn"), help="algorithm")
    parser.add_argument("--env", required=True, help="env id, e.g. CartPole-v1, MinAtar/Breakout, ALE/Pong-v5")
    parser.add_argument("--norm", default="none", help="registered norm name for the networks (see `normrl norms`) [none]")
    parser.add_argument("--steps", type=int, required=True, help="env steps to train in total")
    parser.add_argument("--num-envs", type=int, default=None, help="parallel sub-envs [the env preset's]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the env, networks and sampling [0]")
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="train several seeds as one stacked run in one process, e.g. 0-15 or 0,3,5 (--algo ppo; "
                             "CartPole and MinAtar envs; norms without running statistics: none, layernorm, rmsnorm, "
                             "crmsnorm, dyt, nap, groupnorm, evonorm_s0; no interventions, no --resume); seed k logs to "
                             "LOGDIR/seed_<k>/ [one run with --seed]")
    parser.add_argument("--device", default="cpu", help="torch device, or 'auto' for cuda when available [cpu]")
    parser.add_argument("--logdir", default=None, help="run directory [runs/<algo>_<env>_<norm>_s<seed>_<time>]")
    parser.add_argument("--resume", action="store_true", help="continue the run in --logdir from its latest checkpoint")
    parser.add_argument("--trust-checkpoint", action="store_true", help="with --resume: load a checkpoint whose pickle holds more than tensors and plain data "
                        "with full unpickling, which can run code (only for files you trust)")
    parser.add_argument("--checkpoint-every", type=int, default=100_000, help="env steps between checkpoints [100000]")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads; 1 is usually fastest for small networks on a shared machine [0: torch's default]")
    parser.add_argument("--deterministic", action="store_true", help="CUDA: deterministic kernels (torch.use_deterministic_algorithms, CUBLAS_WORKSPACE_CONFIG); slower; see docs/reproducibility.md")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser)


def default_logdir(algo: str, env: str, norm: str, seed: int) -> str:
    """``runs/<algo>_<env>_<norm>_s<seed>_<time>`` with the env id made path-safe."""
    return f"runs/{algo}_{re.sub(r'[^A-Za-z0-9.-]+', '-', env)}_{norm}_s{seed}_{time.strftime('%Y%m%d-%H%M%S')}"


def parse_seeds(text: str) -> list[int]:
    """``"0-15"``, ``"0,3,5"``, ``"0-3,8"`` -> the listed seeds in order (non-negative, no
    repeats); UserError naming the accepted forms otherwise."""
    from normrl.utils.errors import UserError
    from normrl.utils.seeds import parse_seed_text

    try:
        seeds = parse_seed_text(text)
    except ValueError:
        raise UserError(f"--seeds takes non-negative seeds and ranges like 0-15, 0,3,5 or 0-3,8; got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds lists a seed twice: {text!r}")
    return seeds


def run(args) -> int:
    from normrl.runs.device import set_threads

    set_threads(args.threads)
    if args.deterministic:
        from normrl.runs.determinism import enable_deterministic

        enable_deterministic()
    overrides = {**config_flag_values(args), "seed": args.seed, "norm": args.norm}
    if args.num_envs is not None:
        overrides["num_envs"] = args.num_envs
    if args.seeds is not None:
        return _run_seeds(args, parse_seeds(args.seeds), overrides)
    from normrl.runs import train_single
    from normrl.runs.signals import exit_status

    logdir = args.logdir or default_logdir(args.algo, args.env, args.norm, args.seed)
    summary = train_single(args.algo, args.env, args.steps, logdir, overrides=overrides, device=args.device,
                           resume=args.resume, checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                           trust_checkpoint=args.trust_checkpoint)
    ret = summary["mean_return_last_100"]
    state = "" if summary["signal"] is None else f"; stopped by signal {summary['signal']}, continue with --resume"
    print(f"{args.algo} {args.env}: {summary['steps']} steps in {summary['train_seconds']:.1f}s "
          f"({summary['steps_per_second'] or 0:,.0f} steps/s), mean return (last 100 episodes) "
          f"{'n/a' if ret is None else f'{ret:.2f}'}{state}; logs in {logdir}")
    return 0 if summary["signal"] is None else exit_status(summary["signal"])


def _run_seeds(args, seeds: list[int], overrides: dict) -> int:
    from normrl.runs import train_seeds
    from normrl.runs.signals import exit_status
    from normrl.utils.errors import UserError

    if args.seed != 0:
        raise UserError("give either --seed or --seeds, not both")
    if args.resume:
        raise UserError("--resume with --seeds is not supported yet; continue one seed's directory LOGDIR/seed_<k> "
                        "as a single run (--seed k --logdir LOGDIR/seed_<k> --resume)")
    logdir = args.logdir or default_logdir(args.algo, args.env, args.norm, seeds[0]).replace(
        f"_s{seeds[0]}_", f"_seeds{seeds[0]}-{seeds[-1]}_", 1)
    result = train_seeds(args.algo, args.env, args.steps, logdir, seeds, overrides=overrides, device=args.device,
                         checkpoint_every=args.checkpoint_every, progress=not args.no_progress)
    means = [s["mean_return_last_100"] for s in result["summaries"] if s["mean_return_last_100"] is not None]
    ret = f"{sum(means) / len(means):.2f}" if means else "n/a"
    state = "" if result["signal"] is None else f"; stopped by signal {result['signal']}"
    print(f"{args.algo} {args.env}: {len(seeds)} seeds x {result['summaries'][0]['steps']} steps in "
          f"{result['train_seconds']:.1f}s ({result['aggregate_steps_per_second'] or 0:,.0f} steps/s aggregate), mean "
          f"return (last 100 episodes, mean over seeds) {ret}{state}; logs in {logdir}/seed_<k>")
    return 0 if result["signal"] is None else exit_status(result["signal"])
