"""Environment throughput: normrl's batched torch envs vs the reference implementations.

For each env and each number of sub-environments N, measures env steps per second
(N x batched steps / second) with uniformly random actions:

* ``CartPole``: ``make_env("CartPole-v1", N)`` vs gymnasium's numpy-vectorized
  ``CartPoleVectorEnv`` (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``)
  and vs ``SyncVectorEnv`` (N ``CartPole-v1`` envs stepped in a Python loop);
* MinAtar games (``Breakout``, ``Asterix``, ``Freeway``, ``Seaquest``, ``SpaceInvaders``):
  ``make_env("MinAtar/<Game>", N)`` vs N reference ``minatar.Environment`` instances in
  one process, stepped in a Python loop (``act``, ``state()`` for the observation,
  ``reset()`` on terminal), actions drawn from the game's minimal action set. Games
  whose normrl module does not exist yet are skipped.

Our random actions are drawn on the device (``torch.randint``), so the timed loop is
what an on-device rollout would pay for the env. Every measurement runs warmup steps,
then calibrates a step count that fills ``--seconds`` and times it (CUDA synchronized
before each clock read).

Usage (the real measurements take a few minutes; the reference loops at 16384 envs are
slow to build and to step)::

    python scripts/bench_envs.py                          # CPU, 1,64,1024,16384 envs
    python scripts/bench_envs.py --device cuda --compile  # GPU, also torch.compile'd CartPole
    python scripts/bench_envs.py --envs 1,64 --games CartPole,Breakout --seconds 0.2  # quick check

Prints a table (env, num_envs, ours steps/s, reference, reference steps/s, speedup) and
writes JSON with the machine info (CPU model, torch version, device name) to ``--out``.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from normrl.envs import make_env
from normrl.envs.registry import ENV_IDS
from normrl.utils.run_dir import write_json

MINATAR_GAMES = {
    "Breakout": "breakout",
    "Asterix": "asterix",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}
ALL_GAMES = ["CartPole", *MINATAR_GAMES]
WARMUP_STEPS = 3  # default of --warmup-steps
CALIBRATION_SECONDS = 0.1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device of the torch envs (default cpu)")
    parser.add_argument("--envs", default="1,64,1024,16384", help="comma-separated numbers of sub-envs (default 1,64,1024,16384)")
    parser.add_argument("--games", default=",".join(ALL_GAMES), help=f"comma-separated subset of {','.join(ALL_GAMES)} (default all)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement (default 2)")
    parser.add_argument("--out", default="bench_results/envs.json", help="JSON output path (default bench_results/envs.json)")
    parser.add_argument("--compile", action="store_true", help="also time envs built with compile=True (torch.compile'd step)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    parser.add_argument("--skip-reference", action="store_true", help="time only the normrl envs")
    parser.add_argument("--seed", type=int, default=0, help="seed of envs and actions (default 0)")
    parser.add_argument("--warmup-steps", type=int, default=WARMUP_STEPS,
                        help=f"untimed steps before timing, on both sides (default {WARMUP_STEPS}); MinAtar games "
                             "reach their steady mix of entities after ~100 random-policy steps (Seaquest's first "
                             "enemy spawns at step 20), the reference package is faster before that")
    parser.add_argument("--obs-dtype", default="uint8", choices=["float32", "uint8", "bool"],
                        help="observation dtype of the MinAtar envs (default uint8, the envs' default; the reference's "
                             "state() is bool)")
    args = parser.parse_args(argv)
    try:
        args.env_counts = [int(v) for v in args.envs.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--envs must be comma-separated positive ints, got {args.envs!r}")
    if not args.env_counts or min(args.env_counts) < 1:
        parser.error(f"--envs must be comma-separated positive ints, got {args.envs!r}")
    args.game_list = [g.strip() for g in args.games.split(",") if g.strip()]
    unknown = [g for g in args.game_list if g not in ALL_GAMES]
    if unknown:
        parser.error(f"unknown games {unknown}; valid: {', '.join(ALL_GAMES)}")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.warmup_steps < 0:
        parser.error("--warmup-steps must be >= 0")
    from normrl.runs.device import resolve_device
    from normrl.utils.errors import UserError

    try:
        resolve_device(args.device)
    except UserError as exc:
        parser.error(str(exc))
    return args


def time_steps(step: Callable[[], None], seconds: float, sync: Callable[[], None],
               warmup: int = WARMUP_STEPS) -> tuple[int, float]:
    """Run ``step`` ``warmup`` times, then repeatedly for about ``seconds``; returns ``(steps, elapsed)``."""
    for _ in range(warmup):
        step()
    sync()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < min(CALIBRATION_SECONDS, seconds):
        step()
        steps += 1
        if steps % 16 == 0:
            sync()
    sync()
    per_step = (time.perf_counter() - start) / steps
    count = max(1, int(seconds / per_step))
    start = time.perf_counter()
    for _ in range(count):
        step()
    sync()
    return count, time.perf_counter() - start


def bench_ours(env_id: str, num_envs: int, args, compile_step: bool) -> float:
    device = torch.device(args.device)
    kwargs = {"compile": True} if compile_step else {}
    if env_id.startswith("MinAtar/"):
        kwargs["obs_dtype"] = args.obs_dtype
    env = make_env(env_id, num_envs, device=device, seed=args.seed, **kwargs)
    env.reset()
    gen = torch.Generator(device=device).manual_seed(args.seed)
    n_actions = int(env.single_action_space.n)

    def step():
        env.step(torch.randint(0, n_actions, (num_envs,), generator=gen, device=device))

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps, elapsed = time_steps(step, args.seconds, sync, args.warmup_steps)
    env.close()
    return steps * num_envs / elapsed


def bench_gym_cartpole(num_envs: int, mode: str, args) -> float:
    import gymnasium as gym

    env = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode=mode)
    env.reset(seed=args.seed)
    rng = np.random.default_rng(args.seed)

    def step():
        env.step(rng.integers(0, 2, size=num_envs))

    steps, elapsed = time_steps(step, args.seconds, lambda: None, args.warmup_steps)
    env.close()
    return steps * num_envs / elapsed


def bench_minatar_reference(game: str, num_envs: int, args) -> float:
    from minatar import Environment

    envs = [Environment(MINATAR_GAMES[game]) for _ in range(num_envs)]
    for i, env in enumerate(envs):
        env.seed(args.seed + i)
        env.reset()
    actions = np.array(envs[0].minimal_action_set())
    rng = np.random.default_rng(args.seed)

    def step():
        for env, action in zip(envs, rng.choice(actions, size=num_envs).tolist()):
            _, terminal = env.act(action)
            if terminal:
                env.reset()
            env.state()

    steps, elapsed = time_steps(step, args.seconds, lambda: None, args.warmup_steps)
    return steps * num_envs / elapsed


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(args) -> dict:
    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": cpu_model(),
        "cpu_count": __import__("os").cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": version("gymnasium"),
        "minatar": version("minatar"),
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else cpu_model(),
    }


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows: list[dict] = []
    notes: list[str] = []
    header = f"{'env':<34}{'num_envs':>9}  {'ours steps/s':>14}  {'reference':<28}{'ref steps/s':>14}  {'speedup':>8}"
    print(header)
    print("-" * len(header))

    def emit(row):
        rows.append(row)
        speed = "-" if row["reference_steps_per_s"] is None else f"{row['speedup']:.1f}x"
        print(
            f"{row['env']:<34}{row['num_envs']:>9}  {fmt_rate(row['ours_steps_per_s']):>14}  "
            f"{row['reference'] or '-':<28}{fmt_rate(row['reference_steps_per_s']):>14}  {speed:>8}",
            flush=True,
        )

    for game in args.game_list:
        env_id = "CartPole-v1" if game == "CartPole" else f"MinAtar/{game}"
        module = ENV_IDS[env_id].split(":")[0]
        if importlib.util.find_spec(module) is None:
            notes.append(f"skipped {env_id}: {module} does not exist yet")
            print(f"{env_id:<24}skipped ({module} does not exist yet)", flush=True)
            continue
        variants = [("eager", False)] + ([("compiled", True)] if args.compile else [])
        for num_envs in args.env_counts:
            ours: dict[str, float] = {}
            for label, compile_step in variants:
                try:
                    ours[label] = bench_ours(env_id, num_envs, args, compile_step)
                except TypeError as exc:  # env without a compile option
                    if not compile_step:
                        raise
                    notes.append(f"{env_id}: compile=True not supported ({exc})")
            if args.skip_reference:
                references = [(None, None)]
            elif game == "CartPole":
                references = [
                    ("gymnasium vector_entry_point", bench_gym_cartpole(num_envs, "vector_entry_point", args)),
                    ("gymnasium SyncVectorEnv", bench_gym_cartpole(num_envs, "sync", args)),
                ]
            else:
                references = [("minatar (Python loop)", bench_minatar_reference(game, num_envs, args))]
            for label, rate in ours.items():
                for ref_name, ref_rate in references:
                    emit({
                        "env": (env_id if label == "eager" else f"{env_id} (compiled)")
                        + (f" [{args.obs_dtype}]" if game != "CartPole" else ""),
                        "num_envs": num_envs,
                        "variant": label,
                        "ours_steps_per_s": rate,
                        "reference": ref_name,
                        "reference_steps_per_s": ref_rate,
                        "speedup": None if ref_rate is None else rate / ref_rate,
                    })
    for note in notes:
        print("note:", note)
    settings = {k: v for k, v in vars(args).items() if k not in ("env_counts", "game_list")}
    path = write_json(args.out, {"benchmark": "envs", "machine": machine_info(args), "settings": settings, "results": rows, "notes": notes})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
