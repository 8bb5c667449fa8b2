"""``normrl continual``: train one PPO/DQN agent on a continual task stream, resumably
(:func:`normrl.runs.train_stream`), and print the return matrix at the end.

The run directory ``--logdir`` receives ``config.json`` (before the first step),
TensorBoard events, ``summary.json`` (after every task visit and at the end) and
checkpoints every ``--checkpoint-every`` env steps, after every task visit, and on
SIGINT/SIGTERM (the run stops after the current chunk, saves, and exits with status
130/143). ``--resume`` continues from the latest checkpoint exactly; without it a run
directory that already holds checkpoints is refused rather than overwritten.

Every agent config field is a flag too (``--learning-rate``, ``--buffer-size``, ...: the
same generated flags as ``normrl train``); unset ones keep the first task's env preset.
A resumed run must get the same values (checked against the saved ``config.json``).
"""
from __future__ import annotations

from normrl.commands._config_flags import add_config_flags, config_flag_values

NAME = "continual"
HELP = "train a PPO/DQN agent on a continual task stream (MinAtar, Atari, permuted) and print the return matrix"


def add_arguments(parser) -> None:
    parser.add_argument("--stream", required=True, help="stream name, e.g. minatar, atari-default, atari-Pong,Breakout, "
                        "permuted-obs:CartPole-v1:5 (see docs/continual.md)")
    parser.add_argument("--algo", choices=("ppo", "dqn"), required=True, help="agent")
    parser.add_argument("--norm", default="none", help="registered norm for the networks (see 'normrl norms'; default: none)")
    parser.add_argument("--steps-per-task", type=int, required=True, help="env steps per task visit")
    parser.add_argument("--cycles", type=int, default=1, help="passes over the stream (default: 1)")
    parser.add_argument("--logdir", required=True, help="run directory (config.json, TensorBoard, summary.json, checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --logdir from its latest checkpoint")
    parser.add_argument("--trust-checkpoint", action="store_true", help="with --resume: load a checkpoint whose pickle holds more than tensors and plain data "
                        "with full unpickling, which can run code (only for files you trust)")
    parser.add_argument("--seed", type=int, default=0, help="seed of networks, envs and permutations (default: 0)")
    parser.add_argument("--device", default="auto", help="torch device, or 'auto' for cuda when available (default: auto)")
    parser.add_argument("--num-envs", type=int, default=None, help="parallel envs (default: the algorithm config's num_envs)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per task evaluation, run at once (default: 10)")
    parser.add_argument("--eval-epsilon", type=float, default=None,
                        help="epsilon-greedy evaluation: probability of a random action per evaluation step; 0 is greedy "
                             "(default: 0.05 as in Nature DQN; on --resume the saved run's value)")
    parser.add_argument("--reset-optimizer", action="store_true", help="reset the optimizer state at every task switch")
    parser.add_argument("--restart-lr", choices=("auto", "yes", "no"), default="auto",
                        help="restart the LR schedule at task switches: yes, no, or auto (the schedule decides; default)")
    parser.add_argument("--flush-replay", action="store_true", help="clear the DQN replay buffer at every task switch")
    parser.add_argument("--eval-tasks", choices=("seen", "current"), default="seen",
                        help="after each visit evaluate every task seen so far (default) or only the visit's own")
    parser.add_argument("--fresh-agent", action="store_true",
                        help="the plasticity oracle: a new agent (networks, optimizer, schedule, buffer) at every visit")
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="env steps between checkpoints (default: 50000)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: 0, torch's default)")
    parser.add_argument("--deterministic", action="store_true", help="CUDA: deterministic kernels (torch.use_deterministic_algorithms, CUBLAS_WORKSPACE_CONFIG); slower; see docs/reproducibility.md")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_config_flags(parser)


def run(args) -> int:
    from normrl.continual.result import ContinualResult
    from normrl.runs import train_stream
    from normrl.runs.device import set_threads
    from normrl.runs.signals import exit_status

    set_threads(args.threads)
    if args.deterministic:
        from normrl.runs.determinism import enable_deterministic

        enable_deterministic()
    overrides = {**config_flag_values(args), "seed": args.seed, "norm": args.norm}
    if args.num_envs is not None:
        overrides["num_envs"] = args.num_envs
    eval_kwargs = {} if args.eval_epsilon is None else {"eval_epsilon": args.eval_epsilon}
    summary = train_stream(args.stream, args.algo, args.steps_per_task, args.logdir, cycles=args.cycles,
                           overrides=overrides, device=args.device, resume=args.resume, eval_episodes=args.eval_episodes,
                           **eval_kwargs,
                           reset_optimizer=args.reset_optimizer, restart_lr=args.restart_lr,
                           flush_replay=args.flush_replay, checkpoint_every=args.checkpoint_every,
                           progress=not args.no_progress, trust_checkpoint=args.trust_checkpoint,
                           fresh_agent=args.fresh_agent, eval_tasks=args.eval_tasks)
    table = ContinualResult.from_dict(summary["continual"]).format_table()
    if summary.get("already_complete"):
        print(f"normrl continual: the run in {args.logdir} is already complete")
    elif summary["signal"] is not None:
        print(f"normrl continual: stopped by signal {summary['signal']} at {summary['agent']['steps']} env steps; "
              f"checkpoint saved, continue with --resume")
        return exit_status(summary["signal"])
    print(table)
    return 0
