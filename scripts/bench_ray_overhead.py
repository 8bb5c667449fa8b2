"""Ray's overhead per sweep trial: ``run_trials`` over trivial trials (a function that
returns at once) on a local Ray.

Measures (medians over ``--rounds``; engine and raw rounds alternate):

* ``ray.init`` and ``ray.shutdown`` of an embedded local Ray with ``--num-cpus`` CPUs
  (the start-up cost a sweep pays once);
* ``embedded``: one ``run_trials(..., num_cpus=N)`` call that starts and stops its own
  Ray -- what ``normrl sweep`` costs end to end for trivial trials;
* ``engine``: ``run_trials`` on an already started Ray (warm worker processes), so
  wall / trials is the per-trial overhead of the engine on Ray;
* ``raw``: the floor of Ray core itself -- the same number of no-op ``ray.remote``
  tasks submitted at once and gathered with ``ray.get``;
* ``sweep``: :func:`normrl.runs.sweep.run_sweep` on the warm Ray with a 100-seed grid
  whose trial function returns at once: the engine plus the sweep's own bookkeeping
  (a run-directory check per trial, ``trial.log`` per trial, ``sweep.json`` rewritten as
  each trial ends).

    python scripts/bench_ray_overhead.py                  # 100 trials, 2 CPUs, 5 rounds
    python scripts/bench_ray_overhead.py --tiny           # seconds: checks the script runs

Prints a table and writes JSON (``--json``, default ``bench_ray_overhead.json``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time


def trivial_trial(index: int) -> dict:
    """Returns at once: its wall in the sweep is pure scheduling overhead."""
    return {"index": index}


def trivial_sweep_trial(*, kind, logdir, train, threads=1, device="cpu", progress=True) -> dict:
    """A stand-in for ``run_sweep``'s trial function (same keywords and result keys)
    that returns at once."""
    return {"status": "finished", "score": None, "steps": 0, "signal": None, "resumed": False}


def _time_sweep(run_sweep, spec) -> float:
    with tempfile.TemporaryDirectory() as logdir:
        t0 = time.perf_counter()
        out = run_sweep(spec, logdir, progress=False, report=False, echo=lambda line: None,
                        trial_fn=trivial_sweep_trial)
        wall = time.perf_counter() - t0
    assert out.exit_status == 0 and len(out.ran) == len(spec.seeds)
    return wall


def _time_embedded(run_trials, trials, num_cpus):
    t0 = time.perf_counter()
    out = run_trials(trials, trivial_trial, num_cpus=num_cpus, progress=False)
    wall = time.perf_counter() - t0
    assert all(o.status == "finished" for o in out.values())
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trivial trials per sweep [100]")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray [2]")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per measurement [5]")
    parser.add_argument("--tiny", action="store_true", help="10 trials, 1 round (smoke run)")
    parser.add_argument("--json", default="bench_ray_overhead.json",
                        help="output JSON path [bench_ray_overhead.json]")
    args = parser.parse_args()
    if args.tiny:
        args.trials, args.rounds = 10, 1

    import ray

    from normrl.runs.ray_engine import run_trials
    from normrl.runs.sweep import run_sweep
    from normrl.runs.sweep_spec import SweepSpec

    spec = SweepSpec(algo="ppo", env="CartPole-v1", steps=1, seeds=tuple(range(args.trials)))

    trials = [(f"trial{i:04d}", {"index": i}) for i in range(args.trials)]
    init_opts = dict(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)

    init_s, shutdown_s, embedded_s = [], [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        ray.init(**init_opts)
        t1 = time.perf_counter()
        ray.shutdown()
        t2 = time.perf_counter()
        init_s.append(t1 - t0)
        shutdown_s.append(t2 - t1)
        embedded_s.append(_time_embedded(run_trials, trials, args.num_cpus))

    noop = ray.remote(num_cpus=1, max_retries=0)(trivial_trial)
    ray.init(**init_opts)
    t0 = time.perf_counter()
    run_trials(trials, trivial_trial, progress=False)  # first use: worker processes start
    first_s = time.perf_counter() - t0
    _time_sweep(run_sweep, spec)  # the sweep module's imports
    engine_s, raw_s, sweep_s = [], [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        out = run_trials(trials, trivial_trial, progress=False)
        engine_s.append(time.perf_counter() - t0)
        assert all(o.status == "finished" for o in out.values())
        sweep_s.append(_time_sweep(run_sweep, spec))
        t0 = time.perf_counter()
        ray.get([noop.remote(i) for i in range(args.trials)])
        raw_s.append(time.perf_counter() - t0)
    ray.shutdown()

    med = statistics.median
    n = args.trials
    rows = [
        ("ray.init (local)", med(init_s), None),
        ("ray.shutdown", med(shutdown_s), None),
        ("embedded run_trials (init+trials+shutdown)", med(embedded_s), med(embedded_s) / n),
        ("engine, first call on a fresh Ray", first_s, first_s / n),
        ("engine on a warm Ray", med(engine_s), med(engine_s) / n),
        ("raw Ray tasks (all submitted at once)", med(raw_s), med(raw_s) / n),
        ("run_sweep on a warm Ray (engine + sweep.json)", med(sweep_s), med(sweep_s) / n),
    ]
    print(f"{n} trivial trials, local Ray with {args.num_cpus} CPUs, median of {args.rounds} rounds, "
          f"ray {ray.__version__}")
    print(f"{'measurement':<45} {'wall s':>8} {'per trial ms':>13}")
    for name, wall, per in rows:
        print(f"{name:<45} {wall:8.3f} {'' if per is None else f'{per * 1e3:13.1f}':>13}")
    meta = {"trials": n, "num_cpus": args.num_cpus, "rounds": args.rounds, "ray": ray.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count()}
    results = {"init_s": init_s, "shutdown_s": shutdown_s, "embedded_s": embedded_s,
               "engine_first_s": first_s, "engine_s": engine_s, "raw_s": raw_s, "sweep_s": sweep_s,
               "per_trial_ms": {"embedded": med(embedded_s) / n * 1e3,
                                "engine_warm": med(engine_s) / n * 1e3,
                                "raw": med(raw_s) / n * 1e3,
                                "sweep_warm": med(sweep_s) / n * 1e3}}
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
