#!/usr/bin/env python
"""End-to-end training throughput: normrl PPO/DQN vs Stable-Baselines3 PPO/DQN.

Both sides train on the same normrl TensorEnv (on CPU), with the same hyperparameters,
network sizes and number of envs. SB3 reaches the env through ``TensorVecEnv`` below, a
minimal SB3 ``VecEnv`` over the TensorEnv (numpy out, one host copy per step, the
``terminal_observation`` / ``TimeLimit.truncated`` infos SB3 needs for truncation
bootstrapping). That is the fastest SB3 path available: it spares SB3 the Python loop
of ``DummyVecEnv`` over single gymnasium envs and the process overhead of
``SubprocVecEnv``, so the speedup measures the training loops, not the env.
``--sb3-env gym`` instead gives SB3 its usual ``DummyVecEnv`` over gymnasium's
``CartPole-v1`` / the ``minatar`` package's envs (what SB3 users run).

Settings per (env, algo), shared by both libraries:

* PPO: rollout ``--ppo-num-steps`` (default 128) per env, 4 minibatches, 4 epochs, Adam,
  CartPole: separate 64-64 tanh actor and critic; Breakout: a shared MinAtar CNN
  (conv 16x3x3 + 128 ReLU) with linear policy/value heads;
* DQN: one gradient step of batch 128 per batched env step (SB3 ``train_freq=1``,
  ``gradient_steps=1``; normrl ``train_freq=num_envs``), buffer 100k, learning starts
  after one batched step, target update every 10 batched steps; 120-84 ReLU MLP /
  MinAtar CNN; plain max targets on both sides (SB3's DQN has no Double DQN;
  ``--double-dqn`` gives normrl its default Double DQN targets, one more forward per
  update).

Ours run ``--steps`` env steps, SB3 ``--sb3-steps`` (it is much slower; steps/s is a
rate), each after a short warm-up. Prints a table and writes JSON (``--out``).

    python scripts/bench_train.py --num-envs 1024 --steps 2000000 --sb3-steps 200000
    python scripts/bench_train.py --device cuda --envs MinAtar/Breakout --algos ppo
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch


# -- SB3 side ----------------------------------------------------------------------------
def make_sb3_vec_env(tensor_env):
    """An SB3 ``VecEnv`` over a normrl TensorEnv (see the module docstring)."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class TensorVecEnv(VecEnv):
        def __init__(self, env):
            obs_space = env.single_observation_space
            # bool/uint8 MinAtar planes as float32 in [0, 1], so SB3 does not treat them as images
            obs_space = gym.spaces.Box(np.float32(obs_space.low.min()), np.float32(obs_space.high.max()), obs_space.shape, np.float32)
            super().__init__(env.num_envs, obs_space, env.single_action_space)
            self.env = env
            self._actions = None

        def reset(self):
            return self.env.reset().float().cpu().numpy()

        def step_async(self, actions):
            self._actions = torch.as_tensor(actions, device=self.env.device).long()

        def step_wait(self):
            obs, reward, terminated, truncated, info = self.env.step(self._actions)
            obs_np = obs.float().cpu().numpy()
            done = info["done"].cpu().numpy()
            trunc = (truncated & ~terminated).cpu().numpy()
            infos = [{} for _ in range(self.num_envs)]
            if done.any():
                final = info.get("final_obs", obs).float().cpu().numpy()
                for i in np.flatnonzero(done):
                    infos[i] = {"terminal_observation": final[i], "TimeLimit.truncated": bool(trunc[i])}
            return obs_np, reward.float().cpu().numpy(), done, infos

        def close(self):
            self.env.close()

        def get_attr(self, attr_name, indices=None):
            return [getattr(self, attr_name, None)] * len(self._get_indices(indices))

        def set_attr(self, attr_name, value, indices=None):
            setattr(self, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            return [None] * len(self._get_indices(indices))

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._get_indices(indices))

    return TensorVecEnv(tensor_env)


def minatar_extractor():
    import torch.nn as nn
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class MinAtarExtractor(BaseFeaturesExtractor):
        """Young & Tian's MinAtar torso: conv 16x3x3 (stride 1) + ReLU, flatten, 128 + ReLU."""

        def __init__(self, observation_space):
            super().__init__(observation_space, features_dim=128)
            c, h, w = observation_space.shape
            self.net = nn.Sequential(nn.Conv2d(c, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * (h - 2) * (w - 2), 128), nn.ReLU())

        def forward(self, obs):
            return self.net(obs)

    return MinAtarExtractor


def build_sb3(algo, env_id, vec_env, args, device):
    import torch.nn as nn
    from stable_baselines3 import DQN, PPO

    image = env_id.startswith("MinAtar/")
    n = vec_env.num_envs
    if algo == "ppo":
        batch = n * args.ppo_num_steps
        if image:
            policy_kwargs = dict(features_extractor_class=minatar_extractor(), net_arch=[], share_features_extractor=True)
        else:
            policy_kwargs = dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.Tanh)
        return PPO("MlpPolicy", vec_env, n_steps=args.ppo_num_steps, batch_size=batch // 4, n_epochs=4, learning_rate=2.5e-4,
                   gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
                   policy_kwargs=policy_kwargs, device=device, verbose=0, seed=0)
    policy_kwargs = dict(features_extractor_class=minatar_extractor(), net_arch=[]) if image else dict(net_arch=[120, 84])
    return DQN("MlpPolicy", vec_env, learning_rate=2.5e-4, buffer_size=100_000, learning_starts=n, batch_size=128,
               gamma=0.99, train_freq=1, gradient_steps=1, target_update_interval=10 * n, exploration_fraction=0.5,
               policy_kwargs=policy_kwargs, device=device, verbose=0, seed=0)


def make_sb3_gym_vec_env(env_id: str, num_envs: int):
    """SB3's usual path: ``DummyVecEnv`` over ``num_envs`` single gymnasium envs
    (gymnasium's ``CartPole-v1``; the ``minatar`` package's ``MinAtar/<Game>-v1``,
    transposed to channels-first float32 like normrl's)."""
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env

    if env_id.startswith("MinAtar/"):
        from minatar.gym import register_envs

        if f"{env_id}-v1" not in gym.registry:
            register_envs()

        class ChannelsFirst(gym.ObservationWrapper):
            def __init__(self, env):
                super().__init__(env)
                h, w, c = env.observation_space.shape
                self.observation_space = gym.spaces.Box(0.0, 1.0, (c, h, w), np.float32)

            def observation(self, obs):
                return np.ascontiguousarray(np.transpose(obs, (2, 0, 1)), dtype=np.float32)

        return make_vec_env(f"{env_id}-v1", n_envs=num_envs, seed=0, wrapper_class=ChannelsFirst)
    return make_vec_env(env_id, n_envs=num_envs, seed=0)


# -- normrl side -------------------------------------------------------------------------
def build_ours(algo, env_id, env, args):
    from normrl.agents import DQN, DQNConfig, PPO, PPOConfig

    n = env.num_envs
    if algo == "ppo":
        cfg = PPOConfig(num_steps=args.ppo_num_steps, num_minibatches=4, update_epochs=4, learning_rate=2.5e-4, lr_schedule="constant",
                        hidden=(64, 64), activation="tanh", monitor_every=0)
        return PPO(env, cfg)
    cfg = DQNConfig(learning_rate=2.5e-4, buffer_size=100_000, learning_starts=n, batch_size=128, train_freq=n, gradient_steps=1,
                    target_update_interval=10 * n, hidden=(120, 84), monitor_every=0, log_interval=max(n * 100, 10_000),
                    double_dqn=args.double_dqn)
    return DQN(env, cfg)


def _format_row(r: dict) -> str:
    sb3 = "-" if r["sb3_sps"] is None else f"{r['sb3_sps']:,.0f}"
    speedup = "-" if r["speedup"] is None else f"{r['speedup']:.1f}x"
    return f"{r['env']:<18} {r['algo']:<4} {r['num_envs']:>6} {r['ours_sps']:>14,.0f} {sb3:>14} {speedup:>8}"


def sps(fn, steps):
    t0 = time.perf_counter()
    fn(steps)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=2_000_000, help="env steps timed for normrl")
    p.add_argument("--sb3-steps", type=int, default=200_000, help="env steps timed for SB3")
    p.add_argument("--warmup-steps", type=int, default=0, help="untimed steps first [one PPO rollout / 10 DQN batched steps]")
    p.add_argument("--ppo-num-steps", type=int, default=128)
    p.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=["ppo", "dqn"])
    p.add_argument("--envs", nargs="+", default=["CartPole-v1", "MinAtar/Breakout"])
    p.add_argument("--double-dqn", action=argparse.BooleanOptionalAction, default=False,
                   help="normrl's DQN with Double DQN targets (SB3 has plain max targets, so the matched "
                        "comparison is the default --no-double-dqn) [False]")
    p.add_argument("--threads", type=int, default=None, help="torch threads [torch's default]")
    p.add_argument("--sb3-env", choices=["tensor", "gym"], default="tensor",
                   help="SB3's env: the same normrl TensorEnv through a VecEnv shim [tensor], or DummyVecEnv over gymnasium/minatar envs [gym]")
    p.add_argument("--skip-sb3", action="store_true")
    p.add_argument("--out", default="bench_results/train.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from normrl.envs import make_env

    rows = []
    for env_id in args.envs:
        for algo in args.algos:
            n = args.num_envs
            warm = args.warmup_steps or (n * args.ppo_num_steps if algo == "ppo" else 10 * n)
            agent = build_ours(algo, env_id, make_env(env_id, n, args.device, seed=0), args)
            agent.learn(warm, progress=False)
            ours = sps(lambda s: agent.learn(s, progress=False), args.steps)
            sb3 = None
            if not args.skip_sb3:
                vec_env = make_sb3_vec_env(make_env(env_id, n, args.device, seed=0)) if args.sb3_env == "tensor" else make_sb3_gym_vec_env(env_id, n)
                model = build_sb3(algo, env_id, vec_env, args, args.device)
                model.learn(warm)
                sb3 = sps(lambda s: model.learn(s, reset_num_timesteps=False), args.sb3_steps)
            row = {"env": env_id, "algo": algo, "num_envs": n, "sb3_env": args.sb3_env, "ours_sps": ours, "sb3_sps": sb3, "speedup": None if sb3 is None else ours / sb3}
            rows.append(row)
            print(_format_row(row), flush=True)
    out = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": args.device,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "args": vars(args),
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'env':<18} {'algo':<4} {'envs':>6} {'ours steps/s':>14} {'SB3 steps/s':>14} {'speedup':>8}")
    for r in rows:
        print(_format_row(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
