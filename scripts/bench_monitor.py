"""Cost of the PlasticityMonitor relative to a typical PPO / DQN update.

For each setup it times (median of ``--repeats``):

* ``update``: one optimizer update (forward, loss, backward, Adam step, NaP projection)
  of the setup's network on a minibatch;
* ``event``: one logging event of the monitor (probe forward + every metric + the one
  host transfer), i.e. ``after_update`` on a logging call;
* ``snapshot``: the pre-logging call that copies the weights;
* ``idle``: a non-logging ``after_update`` call (a counter increment).

and reports the monitor's overhead at interval ``every``:
``(event + snapshot + (every - 2)·idle) / (every · update)``.

Setups: ``ppo-mlp`` (CartPole-sized MLP 64x64, NaP, minibatch 256 — PPO's
minibatch in normrl's CartPole preset range) and ``dqn-cnn`` (Nature CNN on 4x84x84
frames, NaP, batch 32 with a target-network forward). Probe: 256 observations.

    python scripts/bench_monitor.py                 # full sizes, CPU
    python scripts/bench_monitor.py --device cuda
    python scripts/bench_monitor.py --tiny          # seconds: checks the script runs

Prints a table and writes JSON (``--json``, default ``bench_monitor.json``).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn as nn

from normrl.metrics import PlasticityMonitor
from normrl.networks import MLP, NatureCNN
from normrl.normalization import NaPProjector, ProjectedOptimizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _setup(name: str, device: torch.device, tiny: bool):
    g = torch.Generator(device="cpu").manual_seed(0)
    if name == "ppo-mlp":
        net = MLP(4, 3, hidden=(64, 64), norm="nap", activation="tanh").to(device)  # 2 logits + value
        batch = 32 if tiny else 256
        obs = torch.randn(batch, 4, generator=g).to(device)
        probe = torch.randn(256, 4, generator=g).to(device)
        target = None
    elif name == "dqn-cnn":
        size = (36, 36) if tiny else (84, 84)
        net = NatureCNN(4, 6, norm="nap", input_size=size).to(device)
        target = NatureCNN(4, 6, norm="nap", input_size=size).to(device)
        batch = 4 if tiny else 32
        obs = torch.randint(0, 256, (batch, 4, *size), generator=g, dtype=torch.uint8).to(device)
        probe = torch.randint(0, 256, (32 if tiny else 256, 4, *size), generator=g, dtype=torch.uint8).to(device)
    else:
        raise ValueError(f"unknown setup {name!r}; valid: ppo-mlp, dqn-cnn")
    opt = ProjectedOptimizer(torch.optim.Adam(net.parameters(), lr=1e-4), NaPProjector(net))

    def update():
        out = net(obs)
        if target is None:
            loss = out.square().mean()
        else:
            with torch.no_grad():
                nxt = target(obs).max(dim=1).values
            loss = nn.functional.smooth_l1_loss(out[:, 0], 0.99 * nxt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return net, update, probe


def bench(name: str, device: torch.device, every: int, repeats: int, tiny: bool) -> dict:
    net, update, probe = _setup(name, device, tiny)
    update()  # gradients present for the monitor's grad norms
    t_update = _time(update, repeats, device)
    # every=1: each call snapshots and logs; every=2 at an odd count: only the snapshot
    mon_event = PlasticityMonitor(net, every=1, probe=probe)
    t_event_and_snapshot = _time(lambda: mon_event.after_update(0), repeats, device)
    mon_idle = PlasticityMonitor(net, every=10**9, probe=probe)
    t_idle = _time(lambda: mon_idle.after_update(0), repeats, device)
    mon_snap = PlasticityMonitor(net, every=2, probe=probe)
    mon_snap.after_update(0)  # count 1: snapshot only
    t_snapshot = _time(lambda: mon_snap._snapshot_before(), repeats, device)
    t_event = max(t_event_and_snapshot - t_snapshot, 0.0)
    per_interval = t_event + t_snapshot + max(every - 2, 0) * t_idle
    overhead = per_interval / (every * t_update)
    # smallest interval with overhead < 5%
    min_every = 1
    while min_every < 10**7 and (t_event + t_snapshot + max(min_every - 2, 0) * t_idle) / (min_every * t_update) >= 0.05:
        min_every *= 2
    return {
        "setup": name, "device": str(device), "update_ms": 1e3 * t_update, "event_ms": 1e3 * t_event,
        "snapshot_ms": 1e3 * t_snapshot, "idle_us": 1e6 * t_idle, "every": every,
        "overhead_pct": 100 * overhead, "min_every_under_5pct": min_every, "tags": len(mon_event.after_update(0) or {}),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device [cpu]")
    parser.add_argument("--every", type=int, default=1000, help="monitor interval [1000, the default]")
    parser.add_argument("--repeats", type=int, default=20, help="timed repetitions per measurement [20]")
    parser.add_argument("--setups", default="ppo-mlp,dqn-cnn", help="comma-separated setups [ppo-mlp,dqn-cnn]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads [1]")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and 2 repeats (smoke run)")
    parser.add_argument("--json", default="bench_monitor.json", help="output JSON path [bench_monitor.json]")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = 2 if args.tiny else args.repeats
    rows = [bench(s.strip(), device, args.every, repeats, args.tiny) for s in args.setups.split(",") if s.strip()]
    header = f"{'setup':<9} {'update ms':>10} {'event ms':>9} {'snap ms':>8} {'idle us':>8} {'every':>6} {'overhead %':>10} {'every<5%':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['setup']:<9} {r['update_ms']:>10.3f} {r['event_ms']:>9.3f} {r['snapshot_ms']:>8.3f} {r['idle_us']:>8.2f} "
              f"{r['every']:>6} {r['overhead_pct']:>10.3f} {r['min_every_under_5pct']:>9}")
    meta = {"machine": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
            "threads": args.threads, "tiny": args.tiny,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
