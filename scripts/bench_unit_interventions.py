"""Cost of ReDo and continual backprop relative to a PPO / DQN update.

For each setup it times one optimizer update (forward, loss, backward, Adam step) of
the setup's network on a minibatch, in rounds that alternate between

* ``base``: the update alone;
* ``cbp``: the update with :class:`~normrl.plasticity.cbp.ContinualBackprop` attached
  at its defaults (its forward hooks, and ``after_step`` after every update);
* ``redo``: the update with :class:`~normrl.plasticity.redo.ReDo` at its defaults
  (``every=1000``: its input-capture hook and ``after_step`` on every update, a
  recycling step on every 1000th),

and reports the median time per update of each (process CPU time on the CPU, wall
time on CUDA) and the overhead
``median(with) / median(base) - 1``. Because whole-loop differences of a few percent
drown in the noise of a shared machine, it also times each method's own work directly
(median of many calls, on the same warm network): ``cbp_step`` is ``after_step`` with
the activations of one training forward (the per-update statistics, the buffer fold
every 32 updates and the replacements at the default rate), ``redo_idle`` the
``after_step`` of a non-recycling update, ``redo_event`` one recycling step (scoring
forward on 256 rows + recycling). ``direct %`` is ``cbp_step / base`` and
``(redo_event + 999·redo_idle) / (1000·base)``.

Setups (normrl's presets): ``ppo-mlp`` (PPO's separate actor and critic 64-64 tanh MLPs,
CartPole, minibatch 256: 32 envs x 32 steps / 4), ``ppo-minatar`` (PPO's shared MinAtar
CNN, minibatch 2048: 64 envs x 128 steps / 4), ``dqn-minatar`` (DQN's MinAtar CNN,
batch 32 with a target-network forward).

    python scripts/bench_unit_interventions.py
    python scripts/bench_unit_interventions.py --device cuda
    python scripts/bench_unit_interventions.py --tiny        # seconds: checks the script runs

Prints a table and writes JSON (``--json``, default ``bench_unit_interventions.json``).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from normrl.agents.dqn.networks import build_q_network
from normrl.agents.ppo.networks import ActorCritic
from normrl.plasticity.cbp import ContinualBackprop
from normrl.plasticity.redo import ReDo

SETUPS = ("ppo-mlp", "ppo-minatar", "dqn-minatar")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(name: str, device: torch.device, tiny: bool):
    """(network, minibatch, loss(net, x))."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if name == "ppo-mlp":
        net = ActorCritic(gym.spaces.Box(-1, 1, (4,), np.float32), 2, hidden=(64, 64), activation="tanh")
        x = torch.randn(32 if tiny else 256, 4, generator=g)

        def loss(model, obs):
            logits, value = model(obs)
            return -logits.log_softmax(-1)[:, 0].mean() + value.square().mean()
    elif name == "ppo-minatar":
        net = ActorCritic(gym.spaces.Box(0, 1, (4, 10, 10), np.uint8), 6)
        x = (torch.rand(32 if tiny else 2048, 4, 10, 10, generator=g) > 0.8).to(torch.uint8)

        def loss(model, obs):
            logits, value = model(obs)
            return -logits.log_softmax(-1)[:, 0].mean() + value.square().mean()
    elif name == "dqn-minatar":
        net = build_q_network(gym.spaces.Box(0, 1, (4, 10, 10), np.uint8), 6)
        x = (torch.rand(32, 4, 10, 10, generator=g) > 0.8).to(torch.uint8)
        target = copy.deepcopy(net)

        def loss(model, obs):
            with torch.no_grad():
                nxt = target.to(obs.device)(obs).max(1).values
            return nn.functional.smooth_l1_loss(model(obs)[:, 0], 0.99 * nxt)
    else:
        raise ValueError(f"unknown setup {name!r}; valid: {', '.join(SETUPS)}")
    return net.to(device), x.to(device), loss


def _trainer(name: str, kind: str, device: torch.device, tiny: bool):
    net, x, loss = _setup(name, device, tiny)
    opt = torch.optim.Adam(net.parameters(), lr=2.5e-4)
    iv = None if kind == "base" else (ContinualBackprop() if kind == "cbp" else ReDo())
    if iv is not None:
        iv.attach(net, opt)
    count = [0]

    def update():
        count[0] += 1
        opt.zero_grad(set_to_none=True)
        loss(net, x).backward()
        opt.step()
        if iv is not None:
            iv.after_step(count[0])

    return net, x, opt, iv, update


def _median_time(fn, calls: int, device: torch.device) -> float:
    # On the CPU the process's CPU time, not wall time: on a shared machine the wall
    # time also counts the time other processes hold the core (with --threads 1 the
    # two agree on an idle machine). On CUDA: wall time with synchronization.
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    _sync(device)
    t0 = clock()
    for _ in range(calls):
        fn()
    _sync(device)
    return (clock() - t0) / calls


def bench(name: str, device: torch.device, rounds: int, calls: int, tiny: bool) -> dict:
    trainers = {k: _trainer(name, k, device, tiny) for k in ("base", "cbp", "redo")}
    for _, _, _, _, update in trainers.values():
        for _ in range(3):
            update()
    samples = {k: [] for k in trainers}
    for _ in range(rounds):
        for k, (_, _, _, _, update) in trainers.items():
            samples[k].append(_median_time(update, calls, device))
    t = {k: statistics.median(v) for k, v in samples.items()}

    # each method's own work, timed directly
    net, x, _, cbp, _ = trainers["cbp"]
    opt = cbp.optimizer
    net(x)  # a training forward: every hooked layer holds its activation
    acts = [s.h for s in cbp.states]

    def cbp_step():
        for s, h in zip(cbp.states, acts):
            s.h = h
        cbp.after_step(0)

    cbp_samples = [_median_time(cbp_step, calls, device) for _ in range(rounds)]
    _, _, _, redo, _ = trainers["redo"]
    redo_idle = [_median_time(lambda: redo.after_step(1), calls, device) for _ in range(rounds)]
    redo_event = [_median_time(redo.apply, 1, device) for _ in range(max(3, rounds // 2))]
    t_cbp_step, t_idle, t_event = statistics.median(cbp_samples), statistics.median(redo_idle), statistics.median(redo_event)
    del opt
    return {
        "setup": name, "device": str(device), "batch": int(x.shape[0]),
        "base_ms": 1e3 * t["base"], "cbp_ms": 1e3 * t["cbp"], "redo_ms": 1e3 * t["redo"],
        "cbp_loop_pct": 100 * (t["cbp"] / t["base"] - 1), "redo_loop_pct": 100 * (t["redo"] / t["base"] - 1),
        "cbp_step_us": 1e6 * t_cbp_step, "redo_idle_us": 1e6 * t_idle, "redo_event_ms": 1e3 * t_event,
        "cbp_direct_pct": 100 * t_cbp_step / t["base"],
        "redo_direct_pct": 100 * (t_event + 999 * t_idle) / (1000 * t["base"]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device [cpu]")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated setups [{','.join(SETUPS)}]")
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds [9]")
    parser.add_argument("--calls", type=int, default=0, help="updates per round [0: 200 for ppo-mlp/dqn-minatar, 10 for ppo-minatar]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads [1]")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, 2 rounds (smoke run)")
    parser.add_argument("--json", default="bench_unit_interventions.json", help="output JSON path [bench_unit_interventions.json]")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name in [s.strip() for s in args.setups.split(",") if s.strip()]:
        calls = args.calls or (10 if name == "ppo-minatar" else 200)
        if args.tiny:
            calls = 3
        rows.append(bench(name, device, 2 if args.tiny else args.rounds, calls, args.tiny))
    header = (f"{'setup':<12} {'batch':>5} {'base ms':>8} {'cbp ms':>8} {'redo ms':>8} {'cbp loop %':>10} {'redo loop %':>11} "
              f"{'cbp step us':>11} {'cbp direct %':>12} {'redo idle us':>12} {'redo event ms':>13} {'redo direct %':>13}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['setup']:<12} {r['batch']:>5} {r['base_ms']:>8.3f} {r['cbp_ms']:>8.3f} {r['redo_ms']:>8.3f} {r['cbp_loop_pct']:>10.1f} "
              f"{r['redo_loop_pct']:>11.1f} {r['cbp_step_us']:>11.1f} {r['cbp_direct_pct']:>12.2f} {r['redo_idle_us']:>12.2f} "
              f"{r['redo_event_ms']:>13.2f} {r['redo_direct_pct']:>13.3f}")
    meta = {"machine": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
            "threads": args.threads, "tiny": args.tiny,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
