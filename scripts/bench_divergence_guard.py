"""Cost of the divergence guard per update (normrl/agents/common/divergence.py).

For each setup (PPO and DQN on CartPole-v1 and MinAtar/Breakout, the library presets,
plasticity monitor off) one agent is built and its buffers filled once; then rounds
alternate between the guard as shipped (``on_divergence="stop"``), the guard in
``"skip-update"`` mode, and no guard (a stand-in whose calls do nothing). A round is
``--updates`` update calls on the same data plus the guard's check once per PPO rollout
(``update_epochs * num_minibatches`` updates) or once per round for DQN (its checks come
every ``log_interval`` env steps, i.e. hundreds of updates apart). Prints the median
time per update of each variant and the guard's overhead, and saves JSON. Times are
this process's CPU time (``time.process_time``, one torch thread), which a busy shared
machine disturbs less than wall-clock time; the JSON has both.

On a busy machine the round-to-round spread of a whole update (several percent) can
exceed the guard's cost, so the script also times the guard's own calls in isolation on
the same agent — ``before_step`` with that agent's gradients, and ``check`` amortized
over the updates between two checks in real training (PPO: one rollout; DQN:
``log_interval`` env steps) — and reports them beside the update time.

    python scripts/bench_divergence_guard.py --rounds 15 --json docs/bench_results/divergence_guard.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch


class _NoGuard:
    """What the agents would do without a guard: always step, never check."""

    mode = "stop"
    skipped_updates = 0

    def record(self, *args, **kwargs) -> None:
        pass

    def before_step(self, *args, **kwargs) -> bool:
        return True

    def check(self, *args, **kwargs) -> None:
        pass

    def reset(self) -> None:
        pass


def _ppo_setup(env_id: str):
    from normrl.agents import PPO
    from normrl.agents.presets import preset_config
    from normrl.envs import make_env

    config = preset_config("ppo", env_id, monitor_every=0)
    agent = PPO(make_env(env_id, config.num_envs, "cpu", seed=0), config)
    agent.learn(agent.batch_size, progress=False)  # fills the rollout buffer
    adv, ret = torch.randn_like(agent.buffer.values), agent.buffer.values.clone()
    per_check = config.update_epochs * config.num_minibatches

    def run(n_updates: int) -> int:
        rollouts = max(1, round(n_updates / per_check))
        for _ in range(rollouts):
            agent._update(adv, ret)
            agent._check_divergence()
        return rollouts * per_check

    return agent, run, per_check


def _dqn_updates_per_check(c) -> int:
    return max(1, c.log_interval // c.train_freq * c.gradient_steps)


def _dqn_setup(env_id: str):
    from normrl.agents import DQN
    from normrl.agents.presets import preset_config
    from normrl.envs import make_env

    config = preset_config("dqn", env_id, monitor_every=0, learning_starts=512, buffer_size=4096)
    agent = DQN(make_env(env_id, config.num_envs, "cpu", seed=0), config)
    agent.learn(1024, progress=False)  # fills the replay buffer

    def run(n_updates: int) -> int:
        for _ in range(n_updates):
            agent._update()
        agent._check_divergence()
        return n_updates

    return agent, run, _dqn_updates_per_check(config)


def _isolated_us(agent, mode: str, per_check: int, rounds: int, guard_class, inner_optimizer) -> float:
    """CPU µs per update of the guard's own calls: ``before_step`` with the agent's
    current gradients (and its clipped norm when it clips) plus ``check`` once per
    ``per_check`` updates; median over ``rounds`` intervals."""
    guard = guard_class(mode, agent.device)
    loss = torch.tensor(1.0, device=agent.device)
    grad_norm = torch.tensor(1.0, device=agent.device) if agent.config.max_grad_norm > 0 else None
    samples = []
    for _ in range(rounds):
        c0 = time.process_time()
        for _ in range(per_check):
            guard.before_step(loss, grad_norm, agent._trained, agent.optimizer, 1, 0)
        guard.check(agent)
        samples.append((time.process_time() - c0) / per_check * 1e6)
    inner_optimizer(agent.optimizer).__dict__.pop("found_inf", None)
    return statistics.median(samples)


SETUPS = {
    "PPO CartPole-v1": lambda: _ppo_setup("CartPole-v1"),
    "PPO MinAtar/Breakout": lambda: _ppo_setup("MinAtar/Breakout"),
    "DQN CartPole-v1": lambda: _dqn_setup("CartPole-v1"),
    "DQN MinAtar/Breakout": lambda: _dqn_setup("MinAtar/Breakout"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15, help="alternating rounds per variant [15]")
    p.add_argument("--updates", type=int, default=64, help="updates per round (PPO: rounded to whole rollouts) [64]")
    p.add_argument("--threads", type=int, default=1, help="torch threads [1]")
    p.add_argument("--setups", nargs="+", default=list(SETUPS), help=f"[{', '.join(SETUPS)}]")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from normrl.agents.common.divergence import DivergenceGuard, _inner_optimizer

    results = {}
    print("| setup | no guard (CPU ms/update) | guard, stop | guard, skip-update | overhead stop | overhead skip-update |")
    print("|---|---|---|---|---|---|")
    for name in args.setups:
        agent, run, per_check = SETUPS[name]()
        variants = {"none": _NoGuard(), "stop": DivergenceGuard("stop", agent.device),
                    "skip-update": DivergenceGuard("skip-update", agent.device)}
        times: dict[str, list[float]] = {k: [] for k in variants}
        wall: dict[str, list[float]] = {k: [] for k in variants}
        run(args.updates)  # warm-up
        for _ in range(args.rounds):
            for key, guard in variants.items():
                agent.divergence = guard
                _inner_optimizer(agent.optimizer).__dict__.pop("found_inf", None)  # skip-update's, from the last round
                t0, c0 = time.perf_counter(), time.process_time()
                done = run(args.updates)
                times[key].append((time.process_time() - c0) / done * 1e3)
                wall[key].append((time.perf_counter() - t0) / done * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        over = {k: (med[k] - med["none"]) / med["none"] * 100 for k in ("stop", "skip-update")}
        iso = {mode: _isolated_us(agent, mode, per_check, args.rounds, DivergenceGuard, _inner_optimizer) for mode in ("stop", "skip-update")}
        results[name] = {"updates_per_check": per_check, "isolated_us_per_update": iso,
                         "isolated_percent": {k: v / 1e3 / med["none"] * 100 for k, v in iso.items()},
                         "median_cpu_ms_per_update": med, "overhead_percent": over, "cpu_samples_ms": times,
                          "median_wall_ms_per_update": {k: statistics.median(v) for k, v in wall.items()}}
        print(f"| {name} | {med['none']:.3f} | {med['stop']:.3f} | {med['skip-update']:.3f} | "
              f"{over['stop']:+.1f}% ({(med['stop'] - med['none']) * 1e3:+.1f} µs) | "
              f"{over['skip-update']:+.1f}% ({(med['skip-update'] - med['none']) * 1e3:+.1f} µs) |", flush=True)
    print()
    print("| setup | update (CPU ms) | updates per check | guard calls, stop (µs/update) | guard calls, skip-update (µs/update) |")
    print("|---|---|---|---|---|")
    for name in args.setups:
        r = results[name]
        print(f"| {name} | {r['median_cpu_ms_per_update']['none']:.3f} | {r['updates_per_check']} | "
              f"{r['isolated_us_per_update']['stop']:.1f} ({r['isolated_percent']['stop']:.2f}%) | "
              f"{r['isolated_us_per_update']['skip-update']:.1f} ({r['isolated_percent']['skip-update']:.2f}%) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "machine": platform.platform(), "threads": args.threads,
                       "rounds": args.rounds, "updates_per_round": args.updates, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
