#!/usr/bin/env python
"""Eager vs ``compile=True`` training throughput of normrl PPO and DQN.

For every (env, algo, num_envs) the script builds an eager and a compiled agent with the
same settings, compiles the compiled one (its first ``learn`` calls; the time they take
beyond steady-state training is reported as ``compile_s``), then times them in
alternating rounds (eager, compiled, eager, ...) of the same number of env steps and
reports the median steps/s of each. One torch thread by default.

Settings (PureJaxRL's, as ``scripts/bench_purejaxrl.py`` matches them):

* PPO CartPole: CleanRL/PureJaxRL ``ppo.py`` (128 steps per rollout, 4 epochs x 4
  minibatches, separate 64-64 tanh actor and critic, Adam 2.5e-4 annealed linearly);
* PPO MinAtar/Breakout: PureJaxRL's MinAtar settings: the same 64-64 MLPs (ReLU) on
  flattened observations, 8 minibatches, Adam 5e-3 annealed; the env like gymnax's
  (no sticky actions, episodes truncated at 1,000 steps);
* DQN: one update of batch 128 per batched env step (``train_freq = num_envs``), buffer
  100k, learning starts after two batched steps, target update every 10 batched steps,
  120-84 ReLU MLP (CartPole) or the flattened-observation MLP (Breakout).

    python scripts/bench_compile.py --out docs/bench_results/compile.json
    python scripts/bench_compile.py --envs CartPole-v1 --algos ppo --num-envs 4 --rounds 5
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn

ENV_KWARGS = {"CartPole-v1": {}, "MinAtar/Breakout": {"sticky_action_prob": 0.0, "max_episode_steps": 1000}}


class FlatMLPActorCritic(nn.Module):
    """normrl's ActorCritic (separate actor and critic MLPs) on flattened observations."""

    def __init__(self, obs_space, n_actions: int, activation: str):
        super().__init__()
        import gymnasium as gym
        import numpy as np

        from normrl.agents.ppo.networks import ActorCritic

        flat = gym.spaces.Box(0.0, 1.0, (int(np.prod(obs_space.shape)),), np.float32)
        self.inner = ActorCritic(flat, n_actions, "none", (64, 64), activation, shared=False)

    def forward(self, obs):
        return self.inner(obs.flatten(1))

    def value(self, obs):
        return self.inner.value(obs.flatten(1))


class FlatQNetwork(nn.Module):
    """normrl's 120-84 ReLU Q-network MLP on flattened observations."""

    def __init__(self, obs_space, n_actions: int):
        super().__init__()
        import gymnasium as gym
        import numpy as np

        from normrl.agents.dqn.networks import build_q_network

        flat = gym.spaces.Box(0.0, 1.0, (int(np.prod(obs_space.shape)),), np.float32)
        self.inner = build_q_network(flat, n_actions, "none", (120, 84), "relu")

    def forward(self, obs):
        return self.inner(obs.flatten(1))


def make_agent(algo: str, env_id: str, num_envs: int, compile: bool, seed: int = 0, device: str = "cpu"):
    from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
    from normrl.envs import make_env

    env = make_env(env_id, num_envs, device, seed=seed, **ENV_KWARGS[env_id])
    torch.manual_seed(seed)
    breakout = env_id.startswith("MinAtar")
    if algo == "ppo":
        cfg = PPOConfig(seed=seed, num_steps=128, num_minibatches=8 if breakout else 4, update_epochs=4,
                        learning_rate=5e-3 if breakout else 2.5e-4, lr_schedule="linear", schedule_horizon=10**9,
                        activation="relu" if breakout else "tanh", monitor_every=0, compile=compile)
        network = FlatMLPActorCritic(env.single_observation_space, int(env.single_action_space.n), cfg.activation) if breakout else None
        return PPO(env, cfg, network=network.to(device) if network is not None else None)
    cfg = DQNConfig(seed=seed, num_envs=num_envs, buffer_size=100_000, batch_size=128, learning_starts=2 * num_envs,
                    train_freq=num_envs, gradient_steps=1, target_update_interval=10 * num_envs, exploration_steps=100_000,
                    double_dqn=False, monitor_every=0, log_interval=10**9, compile=compile)
    network = FlatQNetwork(env.single_observation_space, int(env.single_action_space.n)) if breakout else None
    return DQN(env, cfg, network=network.to(device) if network is not None else None)


def round_steps(algo: str, num_envs: int, target: int) -> int:
    """Env steps per timed round: whole PPO rollouts (N x 128) or batched DQN steps, about ``target``."""
    unit = num_envs * 128 if algo == "ppo" else num_envs
    return unit * max(1, round(target / unit))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_one(algo: str, env_id: str, num_envs: int, rounds: int, target_steps: int, device: str = "cpu") -> dict:
    steps = round_steps(algo, num_envs, target_steps)
    eager = make_agent(algo, env_id, num_envs, False, device=device)
    compiled = make_agent(algo, env_id, num_envs, True, device=device)
    warm = steps if algo == "ppo" else max(steps, 3 * num_envs)  # DQN: past learning_starts
    t = time.perf_counter()
    compiled.learn(warm, progress=False)  # compiles every graph (rollout chunk(s), update)
    _sync(device)
    first = time.perf_counter() - t
    eager.learn(warm, progress=False)
    rates = {"eager": [], "compiled": []}
    for _ in range(rounds):
        for name, agent in (("eager", eager), ("compiled", compiled)):
            t = time.perf_counter()
            agent.learn(steps, progress=False)
            _sync(device)
            rates[name].append(steps / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in rates.items()}
    compile_s = max(0.0, first - warm / med["compiled"])
    return {"algo": algo, "env": env_id, "num_envs": num_envs, "device": device, "round_steps": steps, "rounds": rounds,
            "eager_sps": med["eager"], "compiled_sps": med["compiled"], "speedup": med["compiled"] / med["eager"],
            "compile_s": compile_s, "eager_all": rates["eager"], "compiled_all": rates["compiled"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="CartPole-v1,MinAtar/Breakout")
    p.add_argument("--algos", default="ppo,dqn")
    p.add_argument("--num-envs", default="4,64,1024")
    p.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per configuration [3]")
    p.add_argument("--round-steps", type=int, default=32_768, help="about this many env steps per round [32768]")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda (compiled: CUDA graphs) [cpu]")
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print("| env | algo | envs | eager steps/s | compiled steps/s | speedup | compile s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for env_id in args.envs.split(","):
        for algo in args.algos.split(","):
            for n in (int(x) for x in args.num_envs.split(",")):
                r = bench_one(algo, env_id, n, args.rounds, args.round_steps, args.device)
                rows.append(r)
                print(f"| {env_id} | {algo} | {n} | {r['eager_sps']:,.0f} | {r['compiled_sps']:,.0f} | "
                      f"{r['speedup']:.2f}x | {r['compile_s']:.0f} |", flush=True)
                if args.out:
                    write_results(args, rows, "bench_compile.py",
                                  gpu=torch.cuda.get_device_name() if args.device.startswith("cuda") else None)


def write_results(args, rows, script: str, **meta_extra) -> None:
    """``{"meta": ..., "rows": rows}`` as JSON in ``args.out``; the meta block names the
    machine, torch, the thread count, ``meta_extra`` and the command that reruns it."""
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "torch": torch.__version__, "threads": args.threads,
            "machine": platform.processor() or platform.machine(), "python": platform.python_version(), **meta_extra,
            "command": f"python scripts/{script} " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
