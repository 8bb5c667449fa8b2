"""Continual-RL plasticity: arms × seeds on one task stream against the fresh-agent
oracle, then the report (a thin front-end over :mod:`normrl.runs.plasticity_rl` and
:mod:`normrl.analysis.plasticity_rl_report`).

The committed results (docs/results/plasticity_rl.md; 2-core CPU, two runs at a time)::

    python scripts/plasticity_rl.py --root runs/plasticity_rl --jobs 2

The full-scale version for a GPU (20 tasks x 500k steps, 64 envs; see the results page)::

    python scripts/plasticity_rl.py --scale gpu --device cuda --jobs 1 --root runs/plasticity_rl_gpu \\
        --report runs/plasticity_rl_gpu/report.md

Finished runs are skipped and interrupted ones resumed when the command is run again;
``--report-only`` rewrites the report from the run directories; ``--quick`` is a
seconds-long smoke test.
"""
import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from normrl.runs.plasticity_rl import DEFAULT_RL_ARMS, RL_PROBLEMS

    from normrl.commands._exit import CommandParser

    p = CommandParser(prog="plasticity_rl.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--problem", choices=sorted(RL_PROBLEMS), default="permuted-breakout", help="[%(default)s]")
    p.add_argument("--arms", nargs="+", default=list(DEFAULT_RL_ARMS),
                   help="arm strings: a norm or 'fresh', plus interventions (none+redo:every=64) "
                        f"[{' '.join(DEFAULT_RL_ARMS)}]; fresh and none are always run")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="[0 1 2]")
    p.add_argument("--root", default="runs/plasticity_rl", help="folder of the runs [runs/plasticity_rl]")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each [2]")
    p.add_argument("--device", default="cpu", help="torch device of every run: cpu, cuda, auto [cpu]")
    p.add_argument("--scale", choices=("cpu", "gpu"), default="cpu",
                   help="cpu: the committed budget; gpu: the full-scale stream (more tasks, 20x the steps) [cpu]")
    p.add_argument("--steps-per-task", type=int, default=None, help="override the problem's budget per visit")
    p.add_argument("--report", default="docs/results/plasticity_rl.md", help="report path (PNGs beside it)")
    p.add_argument("--report-only", action="store_true", help="only (re)write the report from the runs under --root")
    p.add_argument("--quick", action="store_true", help="tiny budget for smoke tests")
    return p


def make_plan(args):
    from pathlib import Path

    from normrl.runs.plasticity_rl import GPU_SCALE, RL_PROBLEMS, RLPlan, parse_rl_arms

    problem = RL_PROBLEMS[args.problem]
    if args.scale == "gpu":
        problem = problem.scaled(**GPU_SCALE)
    if args.quick:
        problem = problem.scaled(stream=problem.stream.rsplit(":", 1)[0] + ":3", steps_per_task=256, eval_episodes=2,
                                 overrides={"num_envs": 4, "num_steps": 32, "monitor_every": 1},
                                 env_kwargs={"max_episode_steps": 100})
    if args.steps_per_task is not None:
        problem = problem.scaled(steps_per_task=args.steps_per_task)
    return RLPlan(Path(args.root), problem, parse_rl_arms(args.arms), tuple(args.seeds), device=args.device)


def setup_text(plan, command: str) -> str:
    p = plan.problem
    return (f"Setup: {p.note}. Stream `{p.stream}` ({p.algo}), {p.steps_per_task:,} env steps per task, "
            f"{p.eval_episodes} evaluation episodes of the task after each visit "
            f"({'greedy' if p.eval_epsilon == 0 else f'ε-greedy, ε = {p.eval_epsilon}'}); agent config = the "
            f"stream's preset with {p.overrides} (full config in each run's config.json). Seeds "
            f"{', '.join(map(str, plan.seeds))}. Runs under `{plan.root}`; regenerate the report with "
            f"`{command} --report-only`.")


def check_args(args) -> None:
    """Refuse, before any run starts, what could only fail later (UserError)."""
    from normrl.runs.device import resolve_device
    from normrl.utils.errors import UserError
    from normrl.utils.run_dir import check_logdir

    for flag, value, least in (("--jobs", args.jobs, 1), ("--steps-per-task", args.steps_per_task, 1)):
        if value is not None and value < least:
            raise UserError(f"{flag} must be >= {least}, got {value}")
    if any(s < 0 for s in args.seeds):
        raise UserError(f"--seeds must be >= 0, got {args.seeds}")
    resolve_device(args.device)
    if not args.report_only:
        check_logdir(args.root)


def run(args) -> int:
    from pathlib import Path

    from normrl.analysis.plasticity_rl_report import write_rl_report
    from normrl.runs.local_jobs import report_failed
    from normrl.runs.plasticity_rl import run_rl_plasticity

    check_args(args)
    plan = make_plan(args)
    status = {} if args.report_only else run_rl_plasticity(plan, jobs=args.jobs)
    command = f"python scripts/plasticity_rl.py --root {plan.root}" + (" --scale gpu" if args.scale == "gpu" else "")
    write_rl_report(plan.root, plan.problem.name, args.report,
                    title=f"Continual-RL plasticity: {plan.problem.name}", setup=setup_text(plan, command),
                    skip_first=1 if plan.problem.stream.startswith("permuted-") else 0)
    print(Path(args.report).read_text())
    return report_failed(status)


def main(argv=None) -> int:
    from normrl.commands._exit import run_command

    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(parser.prog, run, args)


if __name__ == "__main__":
    sys.exit(main())
