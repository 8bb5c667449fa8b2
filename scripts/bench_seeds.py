#!/usr/bin/env python
"""The seed axis's throughput: S seeds x N envs stacked in one process
(:class:`~normrl.agents.ppo.stacked.StackedPPO`) against one seed x N envs, PPO.

For every (env, mode) the script builds one single-seed agent and one stacked run of
``--seeds`` seeds with the same settings (``scripts/bench_compile.py``'s: CleanRL's
CartPole PPO; PureJaxRL's MinAtar-Breakout PPO on flattened observations), warms both
up (the compiled mode compiles its graphs there), then times them in alternating rounds
(single, stacked, single, ...) of ``--round-steps`` env steps per seed and reports the
median steps/s: the single seed's, the stacked run's aggregate (all seeds' env steps
per second) and their ratio (the issue's target: >= 4x at 16 seeds x 4 envs), and the
GFLOP/s each reaches in the networks' matrix products (:func:`flops_per_env_step`). One
torch thread by default.

    python scripts/bench_seeds.py --out docs/bench_results/seeds.json
    python scripts/bench_seeds.py --envs CartPole-v1 --modes eager --rounds 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the same agent settings, round sizes and JSON layout as the compile benchmark
from bench_compile import make_agent, write_results  # noqa: E402
from bench_compile import round_steps as round_steps_of  # noqa: E402


def flops_per_env_step(agent) -> float:
    """Arithmetic per env step of one seed, from the network's Linear layers (MACs x 2):
    the rollout's forward, and ``update_epochs`` forward+backward passes (x3) over each
    transition. Elementwise work (activations, Adam, the env) is left out."""
    macs = sum(m.in_features * m.out_features for m in agent.network.modules() if isinstance(m, torch.nn.Linear))
    return 2.0 * macs * (1 + 3 * agent.config.update_epochs)


def bench_one(env_id: str, num_envs: int, num_seeds: int, compiled: bool, rounds: int, target_steps: int) -> dict:
    from normrl.agents.ppo.stacked import StackedPPO

    unit = num_envs * 128  # one rollout: the warm-up
    steps = round_steps_of("ppo", num_envs, target_steps)
    single = make_agent("ppo", env_id, num_envs, compiled, seed=0)
    stacked = StackedPPO([make_agent("ppo", env_id, num_envs, compiled, seed=s) for s in range(num_seeds)])
    t = time.perf_counter()
    single.learn(unit, progress=False)
    single_warm = time.perf_counter() - t
    t = time.perf_counter()
    stacked.learn(unit)
    stacked_warm = time.perf_counter() - t
    rates = {"single": [], "stacked": []}
    for _ in range(rounds):
        t = time.perf_counter()
        single.learn(steps, progress=False)
        rates["single"].append(steps / (time.perf_counter() - t))
        t = time.perf_counter()
        stacked.learn(steps)
        rates["stacked"].append(num_seeds * steps / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in rates.items()}
    flops = flops_per_env_step(single)
    return {"flops_per_env_step": flops, "single_gflops": med["single"] * flops / 1e9,
            "stacked_gflops": med["stacked"] * flops / 1e9, "env": env_id, "mode": "compiled" if compiled else "eager", "num_envs": num_envs, "num_seeds": num_seeds,
            "round_steps_per_seed": steps, "rounds": rounds, "single_sps": med["single"],
            "stacked_aggregate_sps": med["stacked"], "ratio": med["stacked"] / med["single"],
            "single_warmup_s": single_warm, "stacked_warmup_s": stacked_warm,
            "single_all": rates["single"], "stacked_all": rates["stacked"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="CartPole-v1,MinAtar/Breakout")
    p.add_argument("--modes", default="eager,compiled", help="eager and/or compiled (compile=True) [both]")
    p.add_argument("--num-envs", type=int, default=4, help="sub-envs per seed [4]")
    p.add_argument("--seeds", type=int, default=16, help="seeds of the stacked run [16]")
    p.add_argument("--rounds", type=int, default=5, help="alternating timed rounds [5]")
    p.add_argument("--round-steps", type=int, default=4096, help="about this many env steps per seed per round [4096]")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print("| env | mode | envs/seed | one seed steps/s | seeds | stacked aggregate steps/s | ratio | GFLOP/s (single / stacked) | warm-up s (single / stacked) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for env_id in args.envs.split(","):
        for mode in args.modes.split(","):
            if mode not in ("eager", "compiled"):
                raise SystemExit(f"--modes takes eager and/or compiled, got {mode!r}")
            r = bench_one(env_id, args.num_envs, args.seeds, mode == "compiled", args.rounds, args.round_steps)
            rows.append(r)
            print(f"| {env_id} | {mode} | {args.num_envs} | {r['single_sps']:,.0f} | {args.seeds} | "
                  f"{r['stacked_aggregate_sps']:,.0f} | {r['ratio']:.2f}x | {r['single_gflops']:.1f} / {r['stacked_gflops']:.1f} | "
                  f"{r['single_warmup_s']:.0f} / {r['stacked_warmup_s']:.0f} |", flush=True)
            if args.out:
                write_results(args, rows, "bench_seeds.py")


if __name__ == "__main__":
    main()
