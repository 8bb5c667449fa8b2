"""Step throughput and op profile of the batched torch MinAtar games (a development tool).

For every combination of game, number of sub-envs, thread count, observation dtype
and eager/compiled step, times ``env.step`` with random actions drawn on the device
and prints one row: milliseconds per batched step and env steps per second. With
``--profile`` it also prints torch.profiler's top ops of a few steps (eager only is
informative: a compiled step shows as one fused region).

The comparison with the reference ``minatar`` package lives in ``scripts/bench_envs.py``;
this script is for finding where a step's time goes.

Usage::

    python scripts/profile_minatar.py                                   # Breakout, 1024 and 16384 envs, 1 thread
    python scripts/profile_minatar.py --games Breakout,Freeway,Asterix --envs 1024,16384 \\
        --threads 1,2 --obs-dtypes float32,uint8 --compile both
    python scripts/profile_minatar.py --envs 16384 --profile             # top ops of an eager step
    python scripts/profile_minatar.py --envs 64 --seconds 0.05           # quick check
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from normrl.envs import make_env

GAMES = ("Breakout", "Freeway", "Asterix", "Seaquest", "SpaceInvaders")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="Breakout", help=f"comma-separated subset of {','.join(GAMES)} (default Breakout)")
    parser.add_argument("--envs", default="1024,16384", help="comma-separated numbers of sub-envs (default 1024,16384)")
    parser.add_argument("--threads", default="1", help="comma-separated torch thread counts (default 1)")
    parser.add_argument("--obs-dtypes", default="float32", help="comma-separated of float32,uint8,bool (default float32)")
    parser.add_argument("--compile", choices=["no", "yes", "both"], default="no", help="eager, compiled or both (default no)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per row (default 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--profile", action="store_true", help="print the top ops of 5 steps per row")
    args = parser.parse_args(argv)

    def ints(text, name):
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or min(values) < 1:
            parser.error(f"--{name} must be comma-separated positive ints, got {text!r}")
        return values

    args.env_counts = ints(args.envs, "envs")
    args.thread_counts = ints(args.threads, "threads")
    args.game_list = [g.strip() for g in args.games.split(",") if g.strip()]
    unknown = [g for g in args.game_list if g not in GAMES]
    if unknown:
        parser.error(f"unknown games {unknown}; valid: {', '.join(GAMES)}")
    args.dtype_list = [d.strip() for d in args.obs_dtypes.split(",") if d.strip()]
    bad = [d for d in args.dtype_list if d not in ("float32", "uint8", "bool")]
    if bad or not args.dtype_list:
        parser.error(f"--obs-dtypes must be a subset of float32,uint8,bool, got {args.obs_dtypes!r}")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    args.compile_list = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]
    return args


def time_env(env, seconds: float, sync) -> float:
    """Seconds per ``env.step`` (random actions), after warmup (which includes compilation)."""
    n, gen = env.num_envs, torch.Generator(device=env.device).manual_seed(0)
    n_actions = int(env.single_action_space.n)

    def step():
        env.step(torch.randint(0, n_actions, (n,), generator=gen, device=env.device))

    for _ in range(3):
        step()
    sync()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
        if steps % 16 == 0:
            sync()
    sync()
    return (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    header = f"{'game':<14}{'num_envs':>9}{'threads':>8}{'obs':>9}{'step':>10}{'ms/step':>10}{'steps/s':>14}"
    print(header)
    print("-" * len(header))
    for game in args.game_list:
        for num_envs in args.env_counts:
            for threads in args.thread_counts:
                torch.set_num_threads(threads)
                for dtype in args.dtype_list:
                    for compiled in args.compile_list:
                        env = make_env(f"MinAtar/{game}", num_envs, device=device, seed=0, obs_dtype=dtype, compile=compiled)
                        env.reset()
                        per_step = time_env(env, args.seconds, sync)
                        mode = "compiled" if compiled else "eager"
                        print(f"{game:<14}{num_envs:>9}{threads:>8}{dtype:>9}{mode:>10}{per_step * 1e3:>10.3f}"
                              f"{num_envs / per_step:>14,.0f}", flush=True)
                        if args.profile:
                            actions = torch.zeros(num_envs, dtype=torch.int64, device=device)
                            with torch.profiler.profile() as prof:
                                for _ in range(5):
                                    env.step(actions)
                                sync()
                            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return 0


if __name__ == "__main__":
    sys.exit(main())
