"""``normrl plasticity``: the supervised plasticity suite — problems × arms × seeds against a
fresh-initialization oracle, then the report (table, gate, plots).

    normrl plasticity --problem random-labels --arms none,layernorm,nap,none+redo --seeds 0-2 --jobs 2 --logdir runs/plasticity

Runs go to ``<logdir>/<problem>/<arm>/seed<S>/`` (config.json, summary.json, TensorBoard
events); finished runs are skipped when the command is run again, so an interrupted
suite continues where it stopped. The report (``--report``, default
``<logdir>/report.md`` with PNGs beside it) is rewritten from the run directories
alone; ``--report-only`` skips training.
"""
from __future__ import annotations

import time

NAME = "plasticity"
HELP = "run the supervised plasticity suite (problems x arms x seeds vs a fresh-init oracle) and write its report"

#: A tiny budget for smoke tests (``--quick``): seconds per run.
QUICK = {
    "random-labels": {"problem": {"num_tasks": 6, "num_inputs": 96}, "learner": {"hidden": (16, 16), "epochs": 2, "batch_size": 16}},
    "permuted-inputs": {"problem": {"num_tasks": 6, "num_inputs": 96}, "learner": {"hidden": (16, 16), "epochs": 1, "batch_size": 16}},
    "bit-flipping": {"problem": {"num_tasks": 6, "flip_after": 100}, "learner": {}},
}


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-2"`` → (0, 1, 2); ``"0,3,5"`` and mixes like ``"0-2,7"`` too; a repeat is a
    ValueError."""
    from normrl.utils.seeds import parse_seed_text

    seeds = parse_seed_text(text)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed given twice in {text!r}")
    return tuple(seeds)


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ValueError(f"--hidden takes comma-separated widths like 100,100, got {text!r}") from None
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"--hidden widths must be positive, got {text!r}")
    return widths


def add_arguments(parser) -> None:
    from normrl.runs.plasticity_suite import DEFAULT_ARMS, DEFAULT_PROBLEMS

    parser.add_argument("--problem", default="all",
                        help=f"comma-separated problems, or 'all' ({', '.join(DEFAULT_PROBLEMS)}) [all]")
    parser.add_argument("--arms", default=DEFAULT_ARMS,
                        help="comma-separated arms: NORM[+INTERVENTION|+crelu]...[@key=value,...], e.g. none+redo:tau=0.1, "
                             f"nap@per_row=true, none@optimizer=sgd,lr=0.01; 'fresh' (oracle) and 'none' are always added [{DEFAULT_ARMS}]")
    parser.add_argument("--arms-file", default=None, help="JSON list of arms (strings or objects), instead of --arms")
    parser.add_argument("--seeds", default="0-2", help="seeds, e.g. 0-2 or 0,3,5 [0-2]")
    parser.add_argument("--protocol", choices=("suite", "paper"), default="suite",
                        help="'suite': the documented small budgets; 'paper': every problem's paper protocol [suite]")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per problem [the budget's]")
    parser.add_argument("--epochs", type=int, default=None, help="passes over each task [the budget's]")
    parser.add_argument("--batch-size", type=int, default=None, help="examples per update [the budget's]")
    parser.add_argument("--hidden", type=_hidden, default=None, help="hidden widths, e.g. 100,100 [the budget's]")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default=None, help="optimizer of every arm [the budget's]")
    parser.add_argument("--lr", type=float, default=None, help="learning rate of every arm [the budget's]")
    parser.add_argument("--num-inputs", type=int, default=None, help="digits images of the digits problems [the budget's]")
    parser.add_argument("--input-scaling", choices=("standardize", "unit"), default=None,
                        help="digits problems: per-pixel z-score or intensities / 16 [standardize]")
    parser.add_argument("--flip-after", type=int, default=None, help="examples per bit-flipping task [the budget's]")
    parser.add_argument("--quick", action="store_true", help="tiny budget for a smoke test (seconds per run)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="worker processes (one torch thread each); 0 runs everything in this process [2]")
    parser.add_argument("--logdir", default="runs/plasticity", help="the suite's folder [runs/plasticity]")
    parser.add_argument("--report", default=None, help="report path, PNGs beside it [<logdir>/report.md]")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report from the runs under --logdir")


def check_args(args) -> None:
    """Refuse, before any run starts, numbers no run can use (UserError, one line)."""
    import math

    from normrl.utils.errors import UserError

    for flag in ("tasks", "epochs", "batch_size", "num_inputs", "flip_after"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UserError(f"--lr must be a finite number > 0, got {args.lr}")
    if args.jobs < 0:
        raise UserError(f"--jobs must be >= 0, got {args.jobs}")


def build_plan(args):
    """The :class:`~normrl.runs.plasticity_suite.SuitePlan` the arguments describe."""
    from normrl.data.problems.registry import problem_class
    from normrl.runs.plasticity_arms import load_arms_file, parse_arm_list
    from normrl.runs.plasticity_suite import DEFAULT_PROBLEMS, SuitePlan, suite_budget

    problems = DEFAULT_PROBLEMS if args.problem.strip().lower() == "all" else tuple(
        problem_class(p).name for p in args.problem.split(",") if p.strip())
    arms = load_arms_file(args.arms_file) if args.arms_file else parse_arm_list(args.arms)
    if not arms:
        raise ValueError(f"--arms names no arm: {args.arms!r}")
    problem_kwargs, learner = {}, {}
    for p in problems:
        pk, lk = suite_budget(p, args.protocol)
        if args.quick:
            pk, lk = dict(QUICK[p]["problem"]), dict(QUICK[p]["learner"])
        if args.tasks is not None:
            pk["num_tasks"] = args.tasks
        if args.num_inputs is not None and p in ("random-labels", "permuted-inputs"):
            pk["num_inputs"] = args.num_inputs
        if args.input_scaling is not None and p in ("random-labels", "permuted-inputs"):
            pk["scaling"] = args.input_scaling
        if args.flip_after is not None and p == "bit-flipping":
            pk["flip_after"] = args.flip_after
        for key in ("epochs", "batch_size", "hidden", "optimizer", "lr"):
            value = getattr(args, key)
            if value is not None:
                lk[key] = value
        problem_kwargs[p], learner[p] = pk, lk
    return SuitePlan(root=args.logdir, problems=problems, arms=arms, seeds=parse_seeds(args.seeds),
                     problem_kwargs=problem_kwargs, learner=learner)


def run(args) -> int:
    from pathlib import Path

    from normrl.analysis.plasticity_report import format_markdown_table, write_plasticity_report
    from normrl.runs.plasticity_suite import run_suite

    from normrl.utils.run_dir import check_logdir

    report = Path(args.report) if args.report else Path(args.logdir) / "report.md"
    failed = []
    if not args.report_only:
        check_args(args)
        plan = build_plan(args)
        check_logdir(args.logdir)
        print(f"plasticity suite: {', '.join(plan.problems)}; arms: {', '.join(a.name for a in plan.arms)}; "
              f"seeds {', '.join(map(str, plan.seeds))}; {args.jobs} jobs; runs in {plan.root}", flush=True)
        t0 = time.perf_counter()
        status = run_suite(plan, jobs=args.jobs, echo=lambda line: print(line, flush=True))
        failed = [k for k, code in status.items() if code != 0]
        print(f"suite wall time {time.perf_counter() - t0:.0f} s ({len(status)} runs, {len(failed)} failed)", flush=True)
    result = write_plasticity_report(args.logdir, report, title="Plasticity suite")
    for problem, res in result.items():
        print(f"\n## {problem}\n\n{format_markdown_table(res['rows'], res['kind'])}\n")
        print("gate: " + ("PASSED" if res["gate"]["passed"] else "NOT PASSED"))
        for text, ok in res["gate"]["checks"]:
            print(f"  [{'x' if ok else ' '}] {text}")
    print(f"\nreport: {report}")
    if failed:
        print("failed runs (see their worker.log): " + "; ".join(f"{p} {a} seed {s}" for p, a, s in failed))
        return 1
    return 0
