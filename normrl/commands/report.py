"""``normrl report LOGDIR``: aggregate every run directory under LOGDIR (a sweep, or any
folder of ``normrl train`` / ``normrl continual`` runs) into ``report.md``,
``report.json`` and PNGs (:func:`normrl.analysis.report.write_report`): per-task and
aggregate tables with IQM and 95% stratified-bootstrap intervals, return matrices with
forgetting, learning curves and plasticity-metric curves per arm.
"""
from __future__ import annotations

NAME = "report"
HELP = "aggregate run directories (a sweep's LOGDIR) into report.md: IQM + bootstrap intervals, matrices, curves"


def add_arguments(parser) -> None:
    parser.add_argument("logdir", help="folder searched for run directories (config.json + summary.json)")
    parser.add_argument("--out", default=None, help="folder for report.md and report.json [LOGDIR]")
    parser.add_argument("--score-tag", default=None,
                        help="score single-env runs by the mean of the last --score-window values of this TensorBoard "
                             "scalar (e.g. charts/episode_return) instead of summary.json's mean_return_last_100")
    parser.add_argument("--score-window", type=int, default=100, help="values averaged with --score-tag [100]")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples [50000, rliable's default]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap [0]")
    parser.add_argument("--tag", action="append", default=None, metavar="TAG",
                        help="TensorBoard scalars to plot (repeatable) [charts/episode_return and the plasticity "
                             "metrics dormant_ratio, weight_norm, effective_rank, effective_lr (/all)]")
    parser.add_argument("--no-plots", action="store_true", help="tables only")


def run(args) -> int:
    from normrl.analysis.report import write_report

    data = write_report(args.logdir, out=args.out, score_tag=args.score_tag, score_window=args.score_window,
                        reps=args.reps, seed=args.seed, tags=tuple(args.tag) if args.tag else None,
                        plots=not args.no_plots)
    print(data["path"].read_text().split("\n## Runs\n", 1)[0].rstrip())  # the runs table stays in the file
    print(f"normrl report: wrote {data['path']} ({len(data['runs'])} runs, "
          f"{sum(len(p) for s in data['sections'] for p in s['plots'].values())} plots)")
    return 0
