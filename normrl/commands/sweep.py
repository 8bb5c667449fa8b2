"""``normrl sweep``: run a grid of training runs (norms x interventions x config values x
seeds) on one env or stream, on Ray or local processes, resumably
(:func:`normrl.runs.sweep.run_sweep`), then write the report (``normrl report``).

The grid comes from flags or from ``--spec FILE`` (TOML, YAML or JSON with the same
fields; ``LOGDIR/sweep.json`` too), not both. Each trial is an ordinary run directory
``LOGDIR/<env>/<norm>[_<intervention>][_<key>=<value>...]/seed_<s>/``. Re-running the
same command skips finished trials and resumes interrupted ones; the command that does
so is printed at the end. Exit status: 0 when every trial finished, 1 when some failed
or diverged (they are listed), 130 when stopped by SIGINT/SIGTERM (running trials are
checkpointed first), 2 for bad arguments.
"""
from __future__ import annotations

import argparse

NAME = "sweep"
HELP = "run a grid of training runs (norms, interventions, config values, seeds) on Ray or local processes, then report"

_GRID_FLAGS = ("algo", "env", "stream", "steps", "steps_per_task", "cycles", "norm", "intervention", "seeds", "set",
               "env_kwarg", "checkpoint_every", "eval_episodes", "reset_optimizer", "restart_lr", "flush_replay")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_argument_group("grid (or --spec FILE)")
    grid.add_argument("--spec", default=None, help="sweep spec file: .toml, .yaml/.yml or .json (a sweep.json too)")
    grid.add_argument("--algo", choices=("ppo", "dqn"), default=None, help="algorithm")
    grid.add_argument("--env", default=None, help="env id of every trial, e.g. CartPole-v1, MinAtar/Breakout, ALE/Pong-v5")
    grid.add_argument("--stream", default=None, help="continual stream of every trial, e.g. minatar, atari-default")
    grid.add_argument("--steps", type=int, default=None, help="env steps per trial (--env sweeps)")
    grid.add_argument("--steps-per-task", type=int, default=None, help="env steps per task visit (--stream sweeps)")
    grid.add_argument("--cycles", type=int, default=None, help="passes over the stream (--stream sweeps) [1]")
    grid.add_argument("--norm", default=None, help="comma-separated norm names, e.g. none,layernorm,nap [none]")
    grid.add_argument("--intervention", action="append", default=None, metavar="SPEC",
                      help="intervention spec strings (comma-separated or repeated), 'none' for no intervention [none]")
    grid.add_argument("--seeds", default=None, help="seeds: 0-4, 0,2,5 or 0-2,7 [0]")
    grid.add_argument("--set", action="append", default=None, metavar="KEY=V1,V2",
                      help="agent config field and its values, e.g. learning_rate=1e-4,3e-4 (tuples as 64x64); repeatable")
    grid.add_argument("--env-kwarg", action="append", default=None, metavar="KEY=VALUE",
                      help="make_env keyword of every trial (a JSON value or a string), e.g. max_episode_steps=1000")
    grid.add_argument("--checkpoint-every", type=int, default=None, help="env steps between checkpoints [the trainer's]")
    grid.add_argument("--eval-episodes", type=int, default=None, help="(--stream) episodes per task evaluation [10]")
    grid.add_argument("--reset-optimizer", action="store_true", default=None, help="(--stream) reset the optimizer at task switches")
    grid.add_argument("--restart-lr", choices=("auto", "yes", "no"), default=None, help="(--stream) restart the LR schedule at switches")
    grid.add_argument("--flush-replay", action="store_true", default=None, help="(--stream) clear the DQN replay at switches")
    parser.add_argument("--logdir", required=True, help="sweep directory: one run directory per trial, sweep.json, report.md")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", choices=("ray", "local"), default="ray",
                        help="ray: Ray core tasks, local or a cluster (pip install 'normrl[ray]'); "
                             "local: processes on this machine, no Ray [ray]")
    engine.add_argument("--address", default=None, help="join a Ray cluster: auto (started with `ray start --head` "
                        "on this machine) or HOST:PORT [start a local Ray]")
    engine.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray / local engine [all]")
    engine.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs each trial reserves (its torch threads) [1]")
    engine.add_argument("--gpus-per-trial", type=float, default=0, help="GPUs each trial reserves; fractions share a GPU, "
                        "e.g. 0.25 [0]")
    engine.add_argument("--device", default=None, help="torch device of the trials [cuda with --gpus-per-trial, else cpu]")
    parser.add_argument("--no-report", action="store_true", help="do not write report.md at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (one line per trial still)")


def _key_value(text: str, flag: str) -> tuple[str, str]:
    from normrl.utils.errors import UserError

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{flag} {text!r}: write KEY=VALUE")
    return key.strip(), value


def spec_from_args(args):
    """The :class:`~normrl.runs.sweep_spec.SweepSpec` of the command line."""
    import json

    from normrl.runs.sweep_spec import NO_INTERVENTION, STREAM_OPTIONS, SweepSpec, load_spec, parse_set_value
    from normrl.utils.errors import UserError

    given = [f for f in _GRID_FLAGS if getattr(args, f) is not None]
    if args.spec is not None:
        if given:
            raise UserError(f"--spec and grid flags exclude each other (got --{given[0].replace('_', '-')}); "
                            "put every field in the spec file")
        return load_spec(args.spec)
    if args.algo is None:
        raise UserError("give --algo (or --spec FILE)")
    data: dict = {"algo": args.algo}
    for name in ("env", "stream", "steps", "steps_per_task", "cycles", "checkpoint_every", "norm", "seeds",
                 *STREAM_OPTIONS):
        if getattr(args, name) is not None:
            data[name] = getattr(args, name)
    if args.intervention is not None:
        data["intervention"] = ",".join(args.intervention) if args.intervention else NO_INTERVENTION
    if args.set:
        grid = {}
        for text in args.set:
            key, value = _key_value(text, "--set")
            if key in grid:
                raise UserError(f"--set {key} given twice; list its values once: {key}=V1,V2")
            grid[key] = parse_set_value(args.algo, key, value)
        data["set"] = {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in grid.items()}
    if args.env_kwarg:
        kwargs = {}
        for text in args.env_kwarg:
            key, value = _key_value(text, "--env-kwarg")
            try:
                kwargs[key] = json.loads(value)
            except ValueError:
                kwargs[key] = value
        data["env_kwargs"] = kwargs
    return SweepSpec.from_dict(data)


def run(args) -> int:
    from normrl.runs.sweep import DIVERGED, FAILED, FINISHED, run_sweep

    spec = spec_from_args(args)
    result = run_sweep(spec, args.logdir, engine=args.engine, address=args.address, num_cpus=args.num_cpus,
                       cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, device=args.device,
                       progress=not args.no_progress, report=not args.no_report)
    total = len(result.trials)
    finished = result.names(FINISHED)
    print(f"normrl sweep: {len(finished)}/{total} trials finished in {result.logdir}")
    for status in (FAILED, DIVERGED):
        for name in result.names(status):
            rec = result.trials[name]
            detail = f": {rec.get('error')} (log: {rec.get('log')})" if status == FAILED else ""
            print(f"  {status}: {name}{detail}")
    if result.report is not None:
        print(f"report: {result.report}")
    if len(finished) < total:
        from normrl.runs.sweep import load_sweep_state

        print(f"resume with: {load_sweep_state(result.logdir)['resume_command']}")
    return result.exit_status
