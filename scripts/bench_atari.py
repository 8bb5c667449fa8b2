"""Atari DQN training throughput: normrl's DQN (as ``scripts/train_atari.py`` runs it)
vs Stable-Baselines3's DQN with the same settings, on the same game, in one run.

Both sides: ``--num-envs`` envs, the Nature CNN on 4 stacked 84x84 grayscale frames,
frame skip 4 with max-pooling, 30 no-op starts, sticky actions 0.25 (ALE v5),
life loss ends the training episode, clipped rewards, replay buffer ``--buffer-size``
(uint8 frames), batch ``--batch-size``, one gradient step every ``--train-freq`` env
steps (transitions summed over envs; SB3's ``train_freq``/``gradient_steps`` are set to
match, see :func:`sb3_train_freq`), target update every 1000 steps, Adam lr 1e-4, Huber loss, gradient clip 10.
``--learning-starts`` must be below ``--warmup`` so that both train during the
timed part. Each side runs ``--warmup`` steps (not timed: buffer filling, first
updates), then ``--steps`` timed env steps; the table gives env steps/s and the ratio.

SB3 side: ``DQN("CnnPolicy", optimize_memory_usage=False)`` on one of two envs:

* ``--sb3-env same`` (default): normrl's own ale-py env (``make_env("ALE/<Game>-v5")``,
  the exact frames the normrl side trains on) through
  :class:`normrl.integrations.sb3.TensorVecEnv` -- isolates the training loop;
* ``--sb3-env atari-wrapper``: SB3's usual pipeline, ``make_atari_env("ALE/<Game>-v5",
  env_kwargs={"frameskip": 1, "repeat_action_probability": 0.25})`` (SB3's
  ``AtariWrapper`` does the frame skip) + ``VecFrameStack(4)`` in a ``DummyVecEnv``
  (``--sb3-vec subproc``: ``SubprocVecEnv``); needs OpenCV (``opencv-python-headless``),
  which normrl does not depend on.

Writes ``--out`` (default bench_results/atari.json) with the machine info. Example::

    python scripts/bench_atari.py --game Pong --num-envs 4 --steps 20000 --warmup 2000 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_atari.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--game", default="Pong", help="ALE game [Pong]")
    p.add_argument("--num-envs", type=int, default=4, help="envs on both sides [4]")
    p.add_argument("--steps", type=int, default=20_000, help="timed env steps per side [20000]")
    p.add_argument("--warmup", type=int, default=2_000, help="untimed env steps before timing [2000]")
    p.add_argument("--learning-starts", type=int, default=1_000, help="env steps before the first update [1000]")
    p.add_argument("--buffer-size", type=int, default=50_000, help="replay capacity [50000]")
    p.add_argument("--batch-size", type=int, default=32, help="batch [32]")
    p.add_argument("--train-freq", type=int, default=4, help="env steps per gradient step [4]")
    p.add_argument("--device", default="cpu", help="torch device of both sides [cpu]")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads of both sides [1]")
    p.add_argument("--sb3-env", choices=("same", "atari-wrapper"), default="same",
                   help="SB3 side's env: 'same' (normrl's ale-py env through TensorVecEnv) or 'atari-wrapper' "
                        "(SB3's make_atari_env; needs OpenCV) [same]")
    p.add_argument("--sb3-vec", choices=("dummy", "subproc"), default="dummy",
                   help="SB3 vec env class with --sb3-env atari-wrapper [dummy]")
    p.add_argument("--skip-sb3", action="store_true", help="measure normrl only")
    p.add_argument("--repeats", type=int, default=1,
                   help="alternate normrl and SB3 runs this many times and report the medians and the median of "
                        "the per-round ratios (a shared machine's speed drifts between runs) [1]")
    p.add_argument("--double-dqn", action=argparse.BooleanOptionalAction, default=False,
                   help="normrl with Double DQN targets (one more forward per update); SB3's DQN has "
                        "plain max targets, so the matched comparison is --no-double-dqn [False]")
    p.add_argument("--out", default="bench_results/atari.json", help="JSON output [bench_results/atari.json]")
    return p


def _settings(args) -> dict:
    from normrl.agents.presets import PRESETS

    base = PRESETS[("dqn", "ALE")]
    return dict(
        num_envs=args.num_envs, buffer_size=args.buffer_size, batch_size=args.batch_size, train_freq=args.train_freq,
        gradient_steps=1, learning_starts=args.learning_starts, learning_rate=base["learning_rate"],
        target_update_interval=base["target_update_interval"], gamma=base["gamma"], max_grad_norm=base["max_grad_norm"],
        exploration_steps=base["exploration_steps"], end_eps=base["end_eps"],
    )


def bench_normrl(args, s: dict) -> dict:
    """Steps/s of normrl's DQN built exactly as scripts/train_atari.py builds it."""
    import torch

    from normrl.agents import DQN
    from normrl.agents.presets import preset_config
    from normrl.envs import make_env
    from normrl.agents.presets import game_preset

    preset = game_preset("atari", args.game)
    overrides = {"num_envs": s["num_envs"], "buffer_size": s["buffer_size"],
                 "batch_size": s["batch_size"], "train_freq": s["train_freq"], "learning_starts": s["learning_starts"],
                 "monitor_every": 0, "log_interval": 10**9, "double_dqn": args.double_dqn}
    config = preset_config("dqn", preset["env_id"], seed=0, **overrides).validate()
    env = make_env(preset["env_id"], config.num_envs, torch.device(args.device), seed=0, **preset["env_kwargs"])
    agent = DQN(env, config)
    agent.learn(args.warmup, progress=False)
    updates0, steps0 = agent.num_updates, agent.num_steps
    t0 = time.perf_counter()
    agent.learn(args.steps, progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    steps, updates = agent.num_steps - steps0, agent.num_updates - updates0
    env.close()
    return {"steps": steps, "updates": updates, "wall_s": wall, "steps_per_s": steps / wall}


def _sb3_env(args, s: dict):
    """The SB3 side's VecEnv (see the module docstring for the two choices)."""
    if args.sb3_env == "same":
        import torch

        from normrl.envs import make_env
        from normrl.agents.presets import game_preset
        from normrl.integrations.sb3 import TensorVecEnv

        preset = game_preset("atari", args.game)
        return TensorVecEnv(make_env(preset["env_id"], s["num_envs"], torch.device("cpu"), seed=0, **preset["env_kwargs"]))
    try:
        import cv2  # noqa: F401  (SB3's AtariWrapper resizes frames with OpenCV)
    except ImportError:
        raise SystemExit("bench_atari.py: error: --sb3-env atari-wrapper needs OpenCV (pip install opencv-python-headless)")
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecFrameStack

    from normrl.agents.presets import atari_env_id

    gym.register_envs(ale_py)
    env = make_atari_env(atari_env_id(args.game), n_envs=s["num_envs"], seed=0,
                         env_kwargs={"frameskip": 1, "repeat_action_probability": 0.25},
                         vec_env_cls=SubprocVecEnv if args.sb3_vec == "subproc" else None)
    return VecFrameStack(env, n_stack=4)


def sb3_train_freq(num_envs: int, train_freq: int) -> tuple[int, int]:
    """SB3 ``(train_freq, gradient_steps)`` giving one update per ``train_freq``
    transitions like normrl: SB3 counts ``train_freq`` in vectorized steps (each
    ``num_envs`` transitions). ValueError when neither divides the other."""
    if train_freq % num_envs == 0:
        return train_freq // num_envs, 1
    if num_envs % train_freq == 0:
        return 1, num_envs // train_freq
    raise ValueError(f"--train-freq ({train_freq}) and --num-envs ({num_envs}) must divide one another "
                     "for SB3 to make the same number of updates")


def bench_sb3(args, s: dict) -> dict:
    """Steps/s of Stable-Baselines3's DQN with the same settings."""
    from stable_baselines3 import DQN

    env = _sb3_env(args, s)
    freq, grad_steps = sb3_train_freq(s["num_envs"], s["train_freq"])
    model = DQN("CnnPolicy", env, learning_rate=s["learning_rate"], buffer_size=s["buffer_size"],
                learning_starts=s["learning_starts"], batch_size=s["batch_size"], gamma=s["gamma"],
                train_freq=freq, gradient_steps=grad_steps, target_update_interval=s["target_update_interval"],
                exploration_fraction=s["exploration_steps"] / 10_000_000, exploration_final_eps=s["end_eps"],
                max_grad_norm=s["max_grad_norm"], optimize_memory_usage=False, device=args.device, seed=0, verbose=0)
    model.learn(args.warmup)
    steps0, updates0 = model.num_timesteps, model._n_updates
    t0 = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    wall = time.perf_counter() - t0
    steps, updates = model.num_timesteps - steps0, model._n_updates - updates0
    env.close()
    return {"steps": steps, "updates": updates, "wall_s": wall, "steps_per_s": steps / wall}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median steps/s (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["steps_per_s"])[(len(runs) - 1) // 2]


def machine_info(args) -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": args.device,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv=None) -> int:
    import torch

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.learning_starts >= args.warmup:
        parser.exit(2, f"bench_atari.py: error: --learning-starts ({args.learning_starts}) must be below --warmup "
                       f"({args.warmup}) so that both sides train while timed\n")
    if min(args.num_envs, args.steps, args.threads, args.repeats) < 1:
        parser.exit(2, "bench_atari.py: error: --num-envs, --steps, --threads and --repeats must be >= 1\n")
    torch.set_num_threads(args.threads)
    s = _settings(args)
    try:
        sb3_train_freq(args.num_envs, args.train_freq)
    except ValueError as exc:
        parser.exit(2, f"bench_atari.py: error: {exc}\n")
    rounds = []
    for _ in range(args.repeats):
        r = {"normrl": bench_normrl(args, s)}
        if not args.skip_sb3:
            r["sb3"] = bench_sb3(args, s)
        rounds.append(r)
    results = {name: _median_run([r[name] for r in rounds]) for name in rounds[0]}
    ratio = (statistics.median(r["normrl"]["steps_per_s"] / r["sb3"]["steps_per_s"] for r in rounds)
             if "sb3" in results else None)
    print(f"Atari DQN training, {args.game}, {args.num_envs} envs, batch {args.batch_size}, train every "
          f"{args.train_freq} steps, buffer {args.buffer_size}, {args.steps} timed steps, device {args.device}, "
          f"{args.threads} thread(s); SB3 env: {args.sb3_env}"
          + (f"; median of {args.repeats} alternating rounds" if args.repeats > 1 else ""))
    print(f"{'impl':<8} {'steps/s':>10} {'updates':>8} {'wall s':>8}")
    for name, r in results.items():
        print(f"{name:<8} {r['steps_per_s']:>10.1f} {r['updates']:>8} {r['wall_s']:>8.1f}")
    if args.repeats > 1:
        for i, r in enumerate(rounds):
            print(f"  round {i + 1}: " + ", ".join(f"{k} {v['steps_per_s']:.1f}" for k, v in r.items())
                  + (f", ratio {r['normrl']['steps_per_s'] / r['sb3']['steps_per_s']:.2f}x" if "sb3" in r else ""))
    if ratio is not None:
        print(f"normrl / sb3: {ratio:.2f}x (target >= 1.5x)")
    out = {"benchmark": "atari_dqn_training", "game": args.game, "settings": {**s, "steps": args.steps,
           "warmup": args.warmup, "sb3_env": args.sb3_env, "sb3_vec": args.sb3_vec, "double_dqn": args.double_dqn},
           "results": results, "speedup": ratio, "rounds": rounds,
           "machine": machine_info(args)}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
