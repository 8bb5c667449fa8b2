#!/usr/bin/env python
"""normrl PPO/DQN vs PureJaxRL's own ``ppo.py`` / ``dqn.py``, one CPU core each, side by
side in one run.

PureJaxRL (luchris429/purejaxrl) jits a whole training run, env included, and vmaps
seeds; it is the peer that defines "fast" for small-batch on-device RL. This script
runs *their* files from a checkout you provide (nothing of theirs is copied into
normrl) through ``scripts/purejaxrl_runner.py`` in a separate JAX virtualenv, and
normrl's agents in this Python, each as a subprocess pinned to one core
(``taskset -c CORE``; JAX with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``, torch with ``torch.set_num_threads(1)``). The two
sides alternate per row (``--repeats`` rounds, medians), so machine noise hits both.

Setup (once; JAX never enters normrl's dependencies)::

    python3 -m venv /work/pjx-venv
    /work/pjx-venv/bin/pip install jax gymnax flax optax distrax chex flashbax
    git clone https://github.com/luchris429/purejaxrl /work/purejaxrl   # any checkout

    python scripts/bench_purejaxrl.py --purejaxrl-dir /work/purejaxrl \
        --jax-python /work/pjx-venv/bin/python       # quick check: 100k steps a run, 25k a seed
    python scripts/bench_purejaxrl.py --purejaxrl-dir /work/purejaxrl \
        --jax-python /work/pjx-venv/bin/python --steps 1000000 --seed-steps 1000000   # the full table

``--jax-python`` defaults to ``$PUREJAXRL_PYTHON``. ``brax``, ``navix`` and ``wandb``
(imported by PureJaxRL for features not benchmarked) need not be installed; see the
runner's docstring for that and for how gymnax >= 1.0's separate ``terminated`` /
``truncated`` are folded back into the ``done`` PureJaxRL expects.

Rows (each side with its own env implementation: gymnax ``CartPole-v1`` /
``Breakout-MinAtar`` vs normrl ``CartPole-v1`` / ``MinAtar/Breakout``, the latter built
like gymnax's: no sticky actions, episodes truncated at 1000 steps):

* **PPO CartPole**, CleanRL/PureJaxRL settings: 128 steps per rollout, 4 epochs x 4
  minibatches, separate 64-64 tanh actor and critic, Adam 2.5e-4 (eps 1e-5) annealed
  linearly to 0, gamma 0.99, GAE 0.95, clip 0.2 (value clipping too), entropy 0.01,
  value 0.5, global grad-norm clip 0.5, per-minibatch advantage normalization;
* **PPO MinAtar-Breakout** with PureJaxRL's flattened-observation MLP and its MinAtar
  hyperparameters (``examples/brax_minatar.ipynb``: Adam 5e-3 annealed, 8 minibatches,
  ReLU, the rest as CartPole); normrl gets the same MLP on flattened observations
  (:class:`FlatObsActorCritic`; its default for (C, 10, 10) grids is a CNN);
* each at ``--num-envs`` (4, 64, 1024), plus ``--seeds`` (16) seeds x ``--seed-envs`` (4)
  envs: PureJaxRL vmaps the seeds in one jitted call (its NUM_SEEDS pattern);
  ``--normrl-seeds-mode sequential`` runs normrl's seeds one after the other and reports
  their summed steps over their summed wall time, ``stacked`` trains them as one
  ``StackedPPO`` (normrl's seed axis, PPO only);
* **DQN CartPole** (when the checkout has ``dqn.py`` and the venv has flashbax), dqn.py's
  own settings: ``--dqn-num-envs`` (10) envs, buffer 10k, batch 128, Adam 2.5e-4,
  epsilon 1 -> 0.05 over 250k steps, learning starts 10k, one update per 10 env steps,
  hard target update every 500, MSE loss, plain max targets, 120-84 ReLU MLP.

Known differences, both sides otherwise the same algorithm: PureJaxRL treats a time-limit
truncation as termination (no bootstrap), normrl bootstraps truncated episodes from
``V(final_obs)``; PureJaxRL anneals the LR once per rollout, normrl per minibatch;
network initializations differ (orthogonal vs torch's default).

Timing: PureJaxRL's jitted train function is called twice; the first call includes
compilation (``compile_s = first - second``). Steps/s is reported without compilation
(PureJaxRL's README convention; the second call) and with it (the first call). normrl is
eager: agent construction is excluded, ``learn`` is timed. "Return" is the mean training
return over the last 10% of iterations (per iteration, the mean over the episodes that
finished in it). Prints one table and writes JSON with machine facts to ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))  # bench_envs (cpu_model)
RUNNER = SCRIPTS / "purejaxrl_runner.py"
XLA_ONE_CORE = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
RETURN_FRACTION = 0.1

GYMNAX_IDS = {"CartPole-v1": "CartPole-v1", "MinAtar/Breakout": "Breakout-MinAtar"}
# normrl env options that match gymnax's defaults: gymnax's MinAtar has no sticky actions
# and a 1000-step time limit (EnvParams.max_steps_in_episode); CartPole-v1 matches as is
NORMRL_ENV_KWARGS = {"CartPole-v1": {}, "MinAtar/Breakout": {"sticky_action_prob": 0.0, "max_episode_steps": 1000}}

# PureJaxRL's configs: ppo.py's __main__ (CartPole), examples/brax_minatar.ipynb (MinAtar)
PPO_COMMON = {"NUM_STEPS": 128, "UPDATE_EPOCHS": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
              "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ANNEAL_LR": True, "DEBUG": False}
PPO_PER_ENV = {
    "CartPole-v1": {"LR": 2.5e-4, "NUM_MINIBATCHES": 4, "ACTIVATION": "tanh"},
    "MinAtar/Breakout": {"LR": 5e-3, "NUM_MINIBATCHES": 8, "ACTIVATION": "relu"},
}
# dqn.py's main() config
DQN_CONFIG = {"BUFFER_SIZE": 10_000, "BUFFER_BATCH_SIZE": 128, "EPSILON_START": 1.0, "EPSILON_FINISH": 0.05,
              "EPSILON_ANNEAL_TIME": 250_000, "TARGET_UPDATE_INTERVAL": 500, "LR": 2.5e-4, "LEARNING_STARTS": 10_000,
              "TRAINING_INTERVAL": 10, "LR_LINEAR_DECAY": False, "GAMMA": 0.99, "TAU": 1.0, "WANDB_MODE": "disabled"}
SETUP_HINT = ("set it up with: python3 -m venv /work/pjx-venv && /work/pjx-venv/bin/pip install jax gymnax flax optax "
              "distrax chex flashbax; git clone https://github.com/luchris429/purejaxrl (see this script's docstring)")


# -- normrl side (runs in a pinned worker subprocess) ----------------------------------------
def _flat_actor_critic_class():
    import torch.nn as nn

    class FlatObsActorCritic(nn.Module):
        """normrl's :class:`~normrl.agents.ppo.networks.ActorCritic` (separate actor and
        critic MLPs) on observations flattened to vectors, as PureJaxRL's ``ppo.py``
        does for MinAtar (``FlattenObservationWrapper`` + 64-64 MLPs)."""

        def __init__(self, obs_space, n_actions: int, hidden, activation: str):
            super().__init__()
            import gymnasium as gym
            import numpy as np

            from normrl.agents.ppo.networks import ActorCritic

            size = int(np.prod(obs_space.shape))
            flat = gym.spaces.Box(float(np.min(obs_space.low)), float(np.max(obs_space.high)), (size,), obs_space.dtype)
            self.inner = ActorCritic(flat, n_actions, "none", tuple(hidden), activation, shared=False)

        def forward(self, obs):
            return self.inner(obs.flatten(1))

        def value(self, obs):
            return self.inner.value(obs.flatten(1))

    return FlatObsActorCritic


def _normrl_agent(spec: dict, seed: int, num_envs: int, extra_config: dict | None = None):
    import torch

    from normrl.agents import DQN, DQNConfig, PPO, PPOConfig
    from normrl.envs import make_env

    env = make_env(spec["env"], num_envs, "cpu", seed=seed, **spec["env_kwargs"])
    if spec["algo"] == "ppo":
        p = spec["ppo"]
        cfg = PPOConfig(seed=seed, num_steps=p["num_steps"], num_minibatches=p["num_minibatches"], update_epochs=p["update_epochs"],
                        learning_rate=p["learning_rate"], lr_schedule="linear", gamma=p["gamma"], gae_lambda=p["gae_lambda"],
                        clip_coef=p["clip_coef"], clip_vloss=True, ent_coef=p["ent_coef"], vf_coef=p["vf_coef"],
                        max_grad_norm=p["max_grad_norm"], norm_adv=True, hidden=(64, 64), activation=p["activation"],
                        shared_network=False, monitor_every=0, **(extra_config or {}))
        network = None
        if spec["flat_mlp"]:
            torch.manual_seed(seed)
            network = _flat_actor_critic_class()(env.single_observation_space, int(env.single_action_space.n), (64, 64), p["activation"])
        return PPO(env, cfg, network=network)
    d = spec["dqn"]
    cfg = DQNConfig(seed=seed, learning_rate=d["learning_rate"], buffer_size=d["buffer_size"], batch_size=d["batch_size"],
                    start_eps=d["start_eps"], end_eps=d["end_eps"], exploration_steps=d["exploration_steps"],
                    learning_starts=d["learning_starts"], train_freq=d["train_freq"], gradient_steps=1,
                    target_update_interval=d["target_update_interval"], gamma=d["gamma"], tau=d["tau"], double_dqn=False,
                    loss="mse", max_grad_norm=0.0, hidden=(120, 84), activation="relu", monitor_every=0,
                    log_interval=d["log_interval"], **(extra_config or {}))
    return DQN(env, cfg)


def _normrl_run(spec: dict, seeds: list[int], num_envs: int, extra_config: dict | None):
    """A ``StackedPPO`` of one agent per seed (normrl's seed axis), each with ``num_envs`` envs."""
    from normrl.agents.ppo.stacked import StackedPPO

    return StackedPPO([_normrl_agent(spec, s, num_envs, extra_config) for s in seeds])


def _final_return(curve, steps: int, batch: int, fraction: float) -> float:
    """Mean of the per-flush mean returns over the last ``fraction`` of ``steps`` (at
    least the last flush)."""
    if not curve:
        return float("nan")
    cut = steps - max(batch, int(round(steps * fraction)))
    tail = [r for s, r in curve if s > cut] or [curve[-1][1]]
    return sum(tail) / len(tail)


def run_normrl(spec: dict) -> dict:
    """One row's normrl side; ``spec`` comes from :func:`normrl_spec`."""
    import torch

    torch.set_num_threads(1)
    steps, seeds, n = spec["steps"], spec["seeds"], spec["num_envs"]
    flush_every = n * spec["ppo"]["num_steps"] if spec["algo"] == "ppo" else spec["dqn"]["log_interval"]
    extra = {"compile": True} if spec.get("compile") else None
    stacked = spec["mode"] == "stacked"
    if stacked and spec["algo"] != "ppo":
        raise SystemExit("--normrl-seeds-mode stacked: normrl's seed axis (StackedPPO) trains PPO only")
    compile_s = 0.0
    if extra:
        # compiled graphs are shared by the process: a throwaway agent pays for compilation
        t0 = time.perf_counter()
        if stacked:
            _normrl_run(spec, seeds, n, extra).learn(2 * flush_every)
        else:
            _normrl_agent(spec, seeds[0], n, extra).learn(2 * flush_every, progress=False)
        compile_s = time.perf_counter() - t0
    if stacked:  # every seed in one StackedPPO, each with its own n envs
        run = _normrl_run(spec, seeds, n, extra)
        t0 = time.perf_counter()
        run.learn(steps)
        wall = time.perf_counter() - t0
        total_steps = run.num_steps * len(seeds)
        returns = [_final_return(a.episode_log.curve, a.num_steps, flush_every, spec["return_fraction"]) for a in run.agents]
        return {"steps": total_steps, "run_s": wall, "sps": total_steps / wall, "final_return": sum(returns) / len(returns),
                "torch": torch.__version__, "threads": torch.get_num_threads(), "compile_s": compile_s}
    total_steps, wall, returns = 0, 0.0, []
    for seed in seeds:
        agent = _normrl_agent(spec, seed, n, extra)
        t0 = time.perf_counter()
        agent.learn(steps, progress=False)
        wall += time.perf_counter() - t0
        total_steps += agent.num_steps
        returns.append(_final_return(agent.episode_log.curve, agent.num_steps, flush_every, spec["return_fraction"]))
    return {"steps": total_steps, "run_s": wall, "sps": total_steps / wall, "final_return": sum(returns) / len(returns),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "compile_s": compile_s}


# -- matched settings for one row ------------------------------------------------------------
def matched_steps(algo: str, env_id: str, num_envs: int, budget: int) -> int:
    """The env steps both sides run: whole PPO rollouts / whole batched DQN steps, as
    PureJaxRL computes NUM_UPDATES (at least one)."""
    per = num_envs * (PPO_COMMON["NUM_STEPS"] if algo == "ppo" else 1)
    return max(1, budget // per) * per


def purejaxrl_spec(algo: str, env_id: str, num_envs: int, steps: int, num_seeds: int) -> dict:
    if algo == "ppo":
        config = {**PPO_COMMON, **PPO_PER_ENV[env_id], "NUM_ENVS": num_envs, "TOTAL_TIMESTEPS": steps, "ENV_NAME": GYMNAX_IDS[env_id]}
    else:
        config = {**DQN_CONFIG, "NUM_ENVS": num_envs, "TOTAL_TIMESTEPS": steps, "ENV_NAME": GYMNAX_IDS[env_id]}
    return {"algo": algo, "config": config, "num_seeds": num_seeds, "seed": 0, "return_fraction": RETURN_FRACTION}


def normrl_spec(algo: str, env_id: str, num_envs: int, steps: int, num_seeds: int, mode: str, compile: bool = False) -> dict:
    spec = {"algo": algo, "compile": compile, "env": env_id, "env_kwargs": NORMRL_ENV_KWARGS[env_id], "num_envs": num_envs, "steps": steps, "seeds": list(range(num_seeds)),
            "mode": mode if num_seeds > 1 else "sequential", "flat_mlp": env_id.startswith("MinAtar/"), "return_fraction": RETURN_FRACTION}
    if algo == "ppo":
        c = {**PPO_COMMON, **PPO_PER_ENV[env_id]}
        spec["ppo"] = {"num_steps": c["NUM_STEPS"], "num_minibatches": c["NUM_MINIBATCHES"], "update_epochs": c["UPDATE_EPOCHS"],
                       "learning_rate": c["LR"], "gamma": c["GAMMA"], "gae_lambda": c["GAE_LAMBDA"], "clip_coef": c["CLIP_EPS"],
                       "ent_coef": c["ENT_COEF"], "vf_coef": c["VF_COEF"], "max_grad_norm": c["MAX_GRAD_NORM"], "activation": c["ACTIVATION"]}
    else:
        c = DQN_CONFIG
        spec["dqn"] = {"learning_rate": c["LR"], "buffer_size": c["BUFFER_SIZE"], "batch_size": c["BUFFER_BATCH_SIZE"],
                       "start_eps": c["EPSILON_START"], "end_eps": c["EPSILON_FINISH"], "exploration_steps": c["EPSILON_ANNEAL_TIME"],
                       "learning_starts": c["LEARNING_STARTS"], "train_freq": c["TRAINING_INTERVAL"],
                       "target_update_interval": c["TARGET_UPDATE_INTERVAL"], "gamma": c["GAMMA"], "tau": c["TAU"],
                       "log_interval": max(num_envs, steps // 20 // num_envs * num_envs)}
    return spec


# -- subprocesses ----------------------------------------------------------------------------
def _pinned(cmd: list[str], core: int | None) -> list[str]:
    if core is None:
        return cmd
    return ["taskset", "-c", str(core), *cmd]


def _run_json(cmd: list[str], env: dict, what: str) -> dict:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _jax_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(XLA_FLAGS=XLA_ONE_CORE, JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _torch_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def run_purejaxrl(args, spec: dict) -> dict:
    cmd = [str(args.jax_python), str(RUNNER), "--purejaxrl-dir", str(args.purejaxrl_dir), "--spec", json.dumps(spec)]
    return _run_json(_pinned(cmd, args.core), _jax_env(), f"PureJaxRL {spec['algo']} {spec['config']['ENV_NAME']}")


def run_normrl_subprocess(args, spec: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker-spec", json.dumps(spec)]
    return _run_json(_pinned(cmd, args.core), _torch_env(), f"normrl {spec['algo']} {spec['env']}")


# -- machine facts ---------------------------------------------------------------------------
def _git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def machine_facts(args, jax_versions: dict) -> dict:
    import torch
    from bench_envs import cpu_model

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "pinned_core": args.core,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "jax_side": jax_versions,
        "purejaxrl_commit": _git_commit(args.purejaxrl_dir),
        "xla_flags": XLA_ONE_CORE,
        "loadavg_start": os.getloadavg(),
    }


# -- the table -------------------------------------------------------------------------------
HEADER = ("| env | algo | envs | seeds | steps/seed | normrl steps/s | PureJaxRL steps/s | ratio | "
          "PureJaxRL incl. compile | compile s | normrl compile s | normrl return | PureJaxRL return |")


def format_row(r: dict) -> str:
    return (f"| {r['env']} | {r['algo']} | {r['num_envs']} | {r['num_seeds']} | {r['steps_per_seed']:,} | "
            f"{r['normrl_sps']:,.0f} | {r['purejaxrl_sps']:,.0f} | {r['ratio']:.2f}x | {r['purejaxrl_sps_incl_compile']:,.0f} | "
            f"{r['purejaxrl_compile_s']:.1f} | {r.get('normrl_compile_s', 0.0):.1f} | {r['normrl_return']:.1f} | {r['purejaxrl_return']:.1f} |")


def print_table(rows: list[dict]) -> None:
    print(HEADER)
    print("|" + "---|" * 4 + "---:|" * 9)
    for r in rows:
        print(format_row(r))


def plan_rows(args, have_dqn: bool) -> list[tuple[str, str, int, int, int]]:
    """``(algo, env, num_envs, num_seeds, steps_per_seed)`` for every row."""
    rows = []
    for env_id in args.envs:
        if "ppo" in args.algos:
            for n in args.num_envs:
                rows.append(("ppo", env_id, n, 1, matched_steps("ppo", env_id, n, args.steps)))
            if args.seeds > 1:
                rows.append(("ppo", env_id, args.seed_envs, args.seeds, matched_steps("ppo", env_id, args.seed_envs, args.seed_steps)))
        if "dqn" in args.algos and env_id == "CartPole-v1" and have_dqn:
            rows.append(("dqn", env_id, args.dqn_num_envs, 1, matched_steps("dqn", env_id, args.dqn_num_envs, args.steps)))
    return rows


def measure_row(args, algo, env_id, n, seeds, steps) -> dict:
    pjx_spec = purejaxrl_spec(algo, env_id, n, steps, seeds)
    ours_spec = normrl_spec(algo, env_id, n, steps, seeds, args.normrl_seeds_mode, args.compile)
    pjx, ours = [], []
    for r in range(args.repeats):
        order = (("pjx", "ours") if r % 2 == 0 else ("ours", "pjx"))
        for side in order:
            if side == "pjx":
                pjx.append(run_purejaxrl(args, pjx_spec))
            else:
                ours.append(run_normrl_subprocess(args, ours_spec))
    row = {
        "env": env_id, "algo": algo, "num_envs": n, "num_seeds": seeds, "steps_per_seed": steps,
        "normrl_seeds_mode": ours_spec["mode"], "normrl_compile": args.compile,
        "normrl_compile_s": statistics.median([o.get("compile_s", 0.0) for o in ours]),
        "normrl_sps": statistics.median([o["sps"] for o in ours]),
        "purejaxrl_sps": statistics.median([p["sps"] for p in pjx]),
        "purejaxrl_sps_incl_compile": statistics.median([p["sps_incl_compile"] for p in pjx]),
        "purejaxrl_compile_s": statistics.median([p["compile_s"] for p in pjx]),
        "normrl_return": statistics.median([o["final_return"] for o in ours]),
        "purejaxrl_return": statistics.median([p["final_return"] for p in pjx]),
        "normrl_runs": ours, "purejaxrl_runs": pjx, "purejaxrl_config": pjx_spec["config"], "normrl_spec": ours_spec,
    }
    row["ratio"] = row["normrl_sps"] / row["purejaxrl_sps"]
    return row


def check_setup(args) -> dict:
    """Fail with a message naming the missing piece; return the JAX side's check."""
    if args.purejaxrl_dir is None:
        raise SystemExit(f"--purejaxrl-dir is required (a checkout of luchris429/purejaxrl); {SETUP_HINT}")
    if not (args.purejaxrl_dir / "purejaxrl" / "ppo.py").is_file():
        raise SystemExit(f"{args.purejaxrl_dir}: no purejaxrl/ppo.py there; --purejaxrl-dir must be a checkout of "
                         f"luchris429/purejaxrl; {SETUP_HINT}")
    if args.jax_python is None:
        raise SystemExit(f"no JAX Python: pass --jax-python or set PUREJAXRL_PYTHON; {SETUP_HINT}")
    if not Path(args.jax_python).is_file():
        raise SystemExit(f"--jax-python {args.jax_python}: no such file (the JAX virtualenv is missing); {SETUP_HINT}")
    if args.core is not None and shutil.which("taskset") is None:
        raise SystemExit("taskset not found (util-linux); install it or pass --no-pin")
    proc = subprocess.run([str(args.jax_python), str(RUNNER), "--purejaxrl-dir", str(args.purejaxrl_dir), "--check"],
                          env=_jax_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the JAX side is not ready: {proc.stderr.strip()}; {SETUP_HINT}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--purejaxrl-dir", type=Path, help="a checkout of luchris429/purejaxrl (required)")
    p.add_argument("--jax-python", default=os.environ.get("PUREJAXRL_PYTHON"),
                   help="Python of the JAX virtualenv [$PUREJAXRL_PYTHON]")
    p.add_argument("--steps", type=int, default=100_000, help="env steps per run (per seed) [100000; 1000000 for the full table]")
    p.add_argument("--seed-steps", type=int, default=25_000,
                   help="env steps per seed in the seeds rows (normrl runs the seeds one after another) [25000]")
    p.add_argument("--envs", nargs="+", default=["CartPole-v1", "MinAtar/Breakout"], choices=sorted(GYMNAX_IDS))
    p.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=["ppo", "dqn"])
    p.add_argument("--num-envs", nargs="+", type=int, default=[4, 64, 1024], help="PPO envs per row [4 64 1024]")
    p.add_argument("--seeds", type=int, default=16, help="seeds in the seeds rows; 1 skips them [16]")
    p.add_argument("--seed-envs", type=int, default=4, help="envs per seed in the seeds rows [4]")
    p.add_argument("--normrl-seeds-mode", choices=["sequential", "stacked"], default="sequential",
                   help="normrl's seeds rows: one run per seed, summed [sequential], or all seeds as one StackedPPO (stacked)")
    p.add_argument("--compile", action="store_true",
                   help="normrl side with compile=True (compilation, by a throwaway agent first, reported apart as compile_s)")
    p.add_argument("--dqn-num-envs", type=int, default=10, help="DQN envs (dqn.py's NUM_ENVS) [10]")
    p.add_argument("--repeats", type=int, default=1, help="rounds per row, the sides alternating; medians reported [1]")
    p.add_argument("--core", type=int, default=0, help="CPU core both sides are pinned to, one after the other [0]")
    p.add_argument("--no-pin", dest="core", action="store_const", const=None, help="do not pin to a core")
    p.add_argument("--out", default="bench_results/purejaxrl.json")
    p.add_argument("--worker-spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker_spec:
        print(json.dumps(run_normrl(json.loads(args.worker_spec))))
        return 0
    for name in ("steps", "seed_steps", "seeds", "seed_envs", "dqn_num_envs", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    check = check_setup(args)
    rows_plan = plan_rows(args, check["dqn"])
    if "dqn" in args.algos and not check["dqn"]:
        print(f"note: no DQN rows (dqn.py missing in the checkout or {check['missing_for_dqn']} missing in the JAX venv)", flush=True)
    facts = machine_facts(args, check["versions"])
    print(f"# {facts['cpu_model']}, core {args.core}, torch {facts['torch']}, jax {check['versions'].get('jax')}, "
          f"gymnax {check['versions'].get('gymnax')}, purejaxrl {str(facts['purejaxrl_commit'])[:7]}, {facts['date']}", flush=True)
    rows = []
    t_start = time.perf_counter()
    for plan in rows_plan:
        row = measure_row(args, *plan)
        rows.append(row)
        print(format_row(row), flush=True)
    facts["loadavg_end"] = os.getloadavg()
    facts["total_wall_s"] = time.perf_counter() - t_start
    out = {"machine": facts, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "worker_spec"},
           "return_fraction": RETURN_FRACTION, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print()
    print_table(rows)
    print(f"\n{len(rows)} rows in {facts['total_wall_s']:.0f} s; JSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
