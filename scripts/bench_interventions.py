"""Per-update overhead of the plasticity interventions that act during training.

For every registered intervention that acts on updates (a penalty, ``per_step``, or a
trigger ``every=k`` steps), built with its defaults, on a PPO-sized update:

* ``mlp``: ``MLP(8, 4, hidden=(64, 64))`` (CartPole-like actor/critic size);
* ``minatar``: ``MinAtarCNN(10, 6)`` (MinAtar's network, 10 padded channels, 6 actions);

each with ``norm="none"`` (plain Adam) and ``norm="nap"`` (``ProjectedOptimizer``), Adam
lr 2.5e-4, MSE loss on random targets, batch ``--batch`` [256].

Measured by alternating one plain and one intervention update, ``--rounds`` ×
``--steps`` times (medians over all of them, milliseconds per update; one event per
round for periodic methods):

* ``plain``: forward, loss, backward, ``optimizer.step()``;
* ``hot``: the same update through the calling contract (``loss + penalty()``, step,
  ``after_step(step)`` at a step where a periodic method does not fire);
* ``event``: one ``after_step`` at a firing step, timed alone (the event's own cost
  plus Compose's NaP re-projection); for methods acting every step it is part of
  ``hot`` and reported as 0;
* ``overhead`` = ``(hot − plain + event / every) / plain``: the amortized share of an
  update at the method's default frequency (the design's target is < 5 %).

Usage::

    python scripts/bench_interventions.py                 # CPU, both networks
    python scripts/bench_interventions.py --device cuda --out bench_results/interventions_cuda.json
    python scripts/bench_interventions.py --quick         # a check that it runs

Prints a table and writes JSON (``--out``, default
``bench_results/bench_interventions.json``) with the machine information.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from normrl.networks import MLP, MinAtarCNN
from normrl.normalization import NaPProjector, ProjectedOptimizer
from normrl.plasticity import Intervention, build_interventions, list_interventions
from normrl.utils.run_dir import environment_info, write_json

SETUPS = ("mlp", "minatar")
NORMS = ("none", "nap")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="torch device [cpu]")
    p.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated networks [{','.join(SETUPS)}]")
    p.add_argument("--norms", default=",".join(NORMS), help=f"comma-separated norms [{','.join(NORMS)}]")
    p.add_argument("--interventions", default=None, help="comma-separated names [every one that acts on updates]")
    p.add_argument("--batch", type=int, default=256, help="batch size [256]")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds [15; 3 with --quick]")
    p.add_argument("--steps", type=int, default=None, help="updates per round [20; 3 with --quick]")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU [torch's default]")
    p.add_argument("--quick", action="store_true", help="few rounds and steps (a check that the script runs)")
    p.add_argument("--out", default="bench_results/bench_interventions.json", help="JSON output path")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 15)
    args.steps = args.steps or (3 if args.quick else 20)
    if args.rounds < 1 or args.steps < 1 or args.batch < 1:
        p.error("--rounds, --steps and --batch must be >= 1")
    return args


def build(setup: str, norm: str, device: torch.device, seed: int):
    torch.manual_seed(seed)
    norm_arg = "nap" if norm == "nap" else None
    if setup == "mlp":
        model, shape = MLP(8, 4, hidden=(64, 64), norm=norm_arg), (8,)
    elif setup == "minatar":
        model, shape = MinAtarCNN(10, 6, norm=norm_arg), (10, 10, 10)
    else:
        raise ValueError(f"unknown setup {setup!r}; valid: {SETUPS}")
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-4)
    if norm == "nap":
        opt = ProjectedOptimizer(opt, NaPProjector(model))
    return model, opt, shape


def acts_on_updates(iv) -> bool:
    trigger = getattr(iv, "trigger", None)
    overrides_penalty = type(iv).penalty is not Intervention.penalty
    return bool(iv.per_step or overrides_penalty or (trigger is not None and trigger.every is not None))


def every_of(iv) -> int:
    trigger = getattr(iv, "trigger", None)
    return trigger.every if trigger is not None and trigger.every is not None else 1


def bench_one(name: str, setup: str, norm: str, args, device: torch.device) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    base_model, base_opt, shape = build(setup, norm, device, seed=0)
    model, opt, _ = build(setup, norm, device, seed=0)
    comp = build_interventions([name], seed=0)
    comp.attach(model, opt)
    every = every_of(comp.interventions[0])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, *shape, generator=g).to(device)
    y = torch.randn(args.batch, model.out_features, generator=g).to(device)
    quiet = every + 1 if every > 1 else 1  # a step where a periodic method does not fire

    def plain():
        loss = (base_model(x) - y).square().mean()
        base_opt.zero_grad()
        loss.backward()
        base_opt.step()

    def hot(step):
        loss = (model(x) - y).square().mean() + comp.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        comp.after_step(step)

    plain_ms, hot_ms, event_ms = [], [], []
    for _ in range(2):  # warm-up (also gives a periodic method its captured batch)
        plain()
        hot(quiet)
    for _ in range(args.rounds):
        for _ in range(args.steps):  # alternate single updates: load drifts hit both alike
            sync()
            t = time.perf_counter()
            plain()
            sync()
            t1 = time.perf_counter()
            hot(quiet)
            sync()
            plain_ms.append((t1 - t) * 1e3)
            hot_ms.append((time.perf_counter() - t1) * 1e3)
        if every > 1:
            t = time.perf_counter()
            comp.after_step(every)
            sync()
            event_ms.append((time.perf_counter() - t) * 1e3)
    p, h = statistics.median(plain_ms), statistics.median(hot_ms)
    e = statistics.median(event_ms) if event_ms else 0.0
    return {
        "intervention": name,
        "setup": setup,
        "norm": norm,
        "batch": args.batch,
        "every": every,
        "plain_ms": p,
        "hot_ms": h,
        "event_ms": e,
        "overhead": (h - p + e / every) / p,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    names = args.interventions.split(",") if args.interventions else [
        n for n in list_interventions() if acts_on_updates(build_interventions([n]).interventions[0])
    ]
    rows = []
    header = f"{'setup':8} {'norm':5} {'intervention':15} {'every':>6} {'plain ms':>9} {'hot ms':>8} {'event ms':>9} {'overhead':>9}"
    print(header)
    print("-" * len(header))
    for setup in args.setups.split(","):
        for norm in args.norms.split(","):
            for name in names:
                r = bench_one(name, setup, norm, args, device)
                rows.append(r)
                print(f"{setup:8} {norm:5} {name:15} {r['every']:>6} {r['plain_ms']:>9.3f} {r['hot_ms']:>8.3f} {r['event_ms']:>9.3f} {100 * r['overhead']:>8.1f}%")
    out = write_json(args.out, {"args": vars(args), "environment": environment_info(), "device": str(device), "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
