"""Does the torch thread count change training results? (docs/reproducibility.md)

Trains four short runs (PPO and DQN on CartPole-v1 and MinAtar/Breakout, seed 0) in a
fresh process per thread count and repeat, hashes the final parameters (SHA-256 of every
network tensor), and prints a table of the hashes per thread count; equal letters mean
identical bits. Saves the table as JSON.

    python scripts/check_determinism.py --threads 1 2 4 --repeats 2 --json docs/bench_results/determinism_threads.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys

RUNS = {
    "PPO CartPole-v1 (64-64 MLP), 2,048 steps": ("ppo", "CartPole-v1", 4, 2048, {"num_steps": 64}),
    "DQN CartPole-v1 (120-84 MLP), 512 steps": ("dqn", "CartPole-v1", 2, 512,
                                                {"learning_starts": 64, "batch_size": 32, "buffer_size": 512, "train_freq": 2}),
    "PPO MinAtar/Breakout (MinAtar CNN), 512 steps": ("ppo", "MinAtar/Breakout", 4, 512, {"num_steps": 32}),
    "DQN MinAtar/Breakout (MinAtar CNN), 256 steps": ("dqn", "MinAtar/Breakout", 2, 256,
                                                      {"learning_starts": 64, "batch_size": 32, "buffer_size": 512, "train_freq": 2}),
}


def _child(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
    from normrl.envs import make_env

    out = {}
    for name, (algo, env_id, num_envs, steps, kw) in RUNS.items():
        cls, cfg = (PPO, PPOConfig) if algo == "ppo" else (DQN, DQNConfig)
        agent = cls(make_env(env_id, num_envs, "cpu", seed=0), cfg(monitor_every=0, **kw))
        agent.learn(steps, progress=False)
        h = hashlib.sha256()
        for net in agent.networks():
            for t in net.state_dict().values():
                h.update(t.detach().contiguous().numpy().tobytes())
        out[name] = h.hexdigest()
    print(json.dumps(out))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        _child(args.child)
        return 0
    hashes: dict[str, dict[str, list[str]]] = {name: {} for name in RUNS}
    for rep in range(args.repeats):
        for t in args.threads:
            proc = subprocess.run([sys.executable, __file__, "--child", str(t)], capture_output=True, text=True, check=True,
                                  env={**os.environ, "OMP_NUM_THREADS": str(t)})
            for name, digest in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                hashes[name].setdefault(str(t), []).append(digest)
    letters: dict[str, str] = {}
    print("| run | " + " | ".join(f"{t} thread(s)" for t in args.threads) + " |")
    print("|---|" + "---|" * len(args.threads))
    for name, per in hashes.items():
        cells = []
        for t in args.threads:
            ds = per[str(t)]
            tag = letters.setdefault(ds[0], chr(ord("A") + len(letters)))
            cells.append(tag if len(set(ds)) == 1 else f"{tag} (repeats differ!)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        import torch

        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "machine": platform.platform(), "cpu_count": os.cpu_count(),
                       "hashes": hashes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
