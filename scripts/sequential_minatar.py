"""Sequential MinAtar: one continual run, or the NaP comparison (``--compare``).

One run (a thin front-end over :func:`normrl.runs.train_stream`, what
``normrl continual --stream minatar`` runs)::

    python scripts/sequential_minatar.py --algo ppo --norm nap --steps-per-task 50000 --cycles 2 --logdir runs/seq_minatar_nap

The comparison (Lyle et al. 2024, arXiv 2407.01800, reproduced small; see
normrl/runs/comparison.py and docs/scripts.md)::

    python scripts/sequential_minatar.py --compare --root runs/seq_minatar_compare --jobs 2

writes docs/results/sequential_minatar.md and its PNG plots; finished runs are skipped,
interrupted ones resumed. ``--quick`` shrinks everything for a smoke test.
"""
import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from normrl.runs.comparison import DEFAULT_NORMS, DEFAULT_SEEDS

    from normrl.commands._exit import CommandParser

    p = CommandParser(prog="sequential_minatar.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--stream", default="minatar", help="task stream [minatar]")
    p.add_argument("--algo", choices=("ppo", "dqn"), default="ppo", help="agent [ppo]")
    p.add_argument("--norm", default="nap", help="norm of a single run [nap]")
    p.add_argument("--steps-per-task", type=int, default=None,
                   help="env steps per task visit [single run: 100000; --compare: 40960; --quick: 256]")
    p.add_argument("--cycles", type=int, default=2, help="passes over the stream [2]")
    p.add_argument("--seed", type=int, default=0, help="seed of a single run [0]")
    p.add_argument("--num-envs", type=int, default=None, help="parallel envs [preset; --compare: 16; --quick: 4]")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation [single run: 10; --compare: 8; --quick: 2]")
    p.add_argument("--logdir", default=None, help="single run directory [runs/seq_minatar_<algo>_<norm>_s<seed>]")
    p.add_argument("--resume", action="store_true", help="single run: continue from its checkpoint")
    p.add_argument("--trust-checkpoint", action="store_true", help="single run: with --resume: load a checkpoint whose pickle holds more than tensors and plain data with full unpickling, which can run code (only for files you trust)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of a single run [1]")
    p.add_argument("--checkpoint-every", type=int, default=25_000,
                   help="single run: env steps between checkpoints (and progress-bar updates) [25000]")
    p.add_argument("--no-progress", action="store_true", help="single run: no progress bar")
    g = p.add_argument_group("comparison")
    g.add_argument("--compare", action="store_true", help="run the norm comparison and write the report")
    g.add_argument("--quick", action="store_true", help="tiny comparison for smoke tests")
    g.add_argument("--norms", nargs="+", default=list(DEFAULT_NORMS), help=f"[{' '.join(DEFAULT_NORMS)}]")
    g.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), help=f"[{' '.join(map(str, DEFAULT_SEEDS))}]")
    g.add_argument("--root", default="runs/seq_minatar_compare", help="folder of the comparison runs [runs/seq_minatar_compare]")
    g.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each [2]")
    g.add_argument("--report", default="docs/results/sequential_minatar.md", help="report path (PNGs beside it)")
    g.add_argument("--report-only", action="store_true", help="only (re)write the report from the runs under --root")
    return p


def _given(value, default):
    """``value`` unless the flag was not given (None); a given 0 stays 0 (and is refused
    where it is invalid), never silently replaced by the default."""
    return default if value is None else value


def single_run(args) -> int:
    from normrl.continual.result import ContinualResult
    from normrl.runs import train_stream
    from normrl.runs.device import set_threads
    from normrl.runs.signals import exit_status

    set_threads(args.threads)
    overrides = {"seed": args.seed, "norm": args.norm}
    if args.num_envs is not None:
        overrides["num_envs"] = args.num_envs
    summary = train_stream(args.stream, args.algo, _given(args.steps_per_task, 100_000),
                           args.logdir or f"runs/seq_minatar_{args.algo}_{args.norm}_s{args.seed}", cycles=args.cycles,
                           overrides=overrides, resume=args.resume, eval_episodes=_given(args.eval_episodes, 10),
                           checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                           trust_checkpoint=args.trust_checkpoint)
    if summary["signal"] is not None:
        return exit_status(summary["signal"])
    print(ContinualResult.from_dict(summary["continual"]).format_table())
    return 0


def compare(args) -> int:
    from pathlib import Path

    from normrl.analysis.results import write_report
    from normrl.continual import stream_tasks
    from normrl.runs.comparison import ComparisonPlan, run_comparison
    from normrl.runs.local_jobs import report_failed
    from normrl.runs.stream import EVAL_EPSILON

    quick = args.quick
    plan = ComparisonPlan(
        root=Path(args.root), stream=args.stream, algo=args.algo, norms=tuple(args.norms), seeds=tuple(args.seeds),
        steps_per_task=_given(args.steps_per_task, 256 if quick else 40_960), cycles=args.cycles,
        num_envs=_given(args.num_envs, 4 if quick else 16), eval_episodes=_given(args.eval_episodes, 2 if quick else 8),
        overrides={"monitor_every": 1, "num_steps": 32} if quick and args.algo == "ppo" else
                  ({"monitor_every": 1} if quick else {"monitor_every": 16}))
    status = {}
    if not args.report_only:
        status = run_comparison(plan, jobs=args.jobs)
    tasks = stream_tasks(plan.stream, plan.steps_per_task)
    n_visits = len(tasks) * plan.cycles
    # task switches at the nominal budget (PPO rounds a visit up to whole rollouts; the
    # defaults are whole rollouts)
    unit = plan.steps_per_task
    setup = (f"Setup: `{plan.algo}` on stream `{plan.stream}` ({', '.join(t.name for t in tasks)}), "
             f"{plan.cycles} cycles, {plan.steps_per_task:,} env steps per task visit, {plan.num_envs} envs, "
             f"norms {', '.join(plan.norms)}, seeds {', '.join(map(str, plan.seeds))}; "
             f"{plan.eval_episodes} evaluation episodes (ε-greedy, ε = {EVAL_EPSILON}) per task after every visit; task env options "
             f"{plan.env_kwargs}; agent config "
             f"= the library preset with {plan.overrides} (full config in each run's config.json). "
             f"Runs under `{plan.root}`; regenerate with `python scripts/sequential_minatar.py --compare "
             f"--root {plan.root} --report-only`.")
    write_report(plan.root, args.report, norms=plan.norms, seeds=plan.seeds,
                       title=f"Sequential {plan.stream}: {', '.join(plan.norms)} ({plan.algo})", setup=setup,
                       total_steps=unit * n_visits, switch_steps=[unit * k for k in range(1, n_visits)],
                       expected_visits=n_visits, segment_labels=[tasks[k % len(tasks)].name for k in range(n_visits)])
    print(Path(args.report).read_text())
    return report_failed(status)


def main(argv=None) -> int:
    from normrl.commands._exit import run_command

    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(parser.prog, compare if (args.compare or args.quick) else single_run, args)


if __name__ == "__main__":
    sys.exit(main())
