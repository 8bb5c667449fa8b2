"""Per-environment default hyperparameters (what ``normrl train`` starts from).

Sources:

* PPO, CartPole-v1: rl-baselines3-zoo's ``ppo.yml`` CartPole-v1 entry (8 envs x 32
  steps, batch 256, 20 epochs, lr 1e-3 linear, gamma 0.98, GAE 0.8, entropy 0), with
  32 envs for throughput (batch 1024 = 4 minibatches of 256).
* DQN, CartPole-v1: rl-baselines3-zoo's ``dqn.yml`` CartPole-v1 entry (lr 2.3e-3,
  batch 64, buffer 100k, learning starts 1000, gamma 0.99, 256-256 MLP, final epsilon
  0.04), with one update per 4 env steps over 8 envs and a target update every 80 env
  steps.
* DQN, MinAtar: the MinAtar paper's DQN (Young & Tian 2019, arXiv 1903.03176): batch
  32, replay 100k, lr 2.5e-4, gamma 0.99, target update every 1000 steps, epsilon
  1.0 -> 0.1 over 100k steps, replay start 5000, one update per step, Huber loss
  (Adam instead of the paper's RMSProp).
* PPO, MinAtar: CleanRL's Atari PPO settings (lr 2.5e-4, 128 steps, 4 minibatches,
  4 epochs, clip 0.1, entropy 0.01) with 64 envs.
* PPO / DQN, ALE: CleanRL's ``ppo_atari.py`` (8 envs) and ``dqn_atari.py`` (lr 1e-4,
  target 1000, batch 32, epsilon 1.0 -> 0.01 over 1M steps, learning starts 80k, train
  every 4 steps), with rl-baselines3-zoo's 100k replay buffer instead of CleanRL's 1M:
  the buffer stores obs and next_obs as uint8 (2 x 28 KB per transition), so 1M would
  need 56 GB, 100k needs 5.6 GB.
"""
from __future__ import annotations

import dataclasses

from normrl.agents.dqn.config import DQNConfig
from normrl.agents.ppo.config import PPOConfig

ALGOS = ("ppo", "dqn")

PRESETS: dict[tuple[str, str], dict] = {
    ("ppo", "CartPole-v1"): dict(
        num_envs=32, num_steps=32, num_minibatches=4, update_epochs=20, learning_rate=1e-3,
        gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
    ),
    ("dqn", "CartPole-v1"): dict(
        num_envs=8, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
        target_update_interval=80, train_freq=4, gradient_steps=1, exploration_steps=16_000,
        end_eps=0.04, hidden=(256, 256),
    ),
    ("ppo", "MinAtar"): dict(
        num_envs=64, num_steps=128, num_minibatches=4, update_epochs=4, learning_rate=2.5e-4,
        clip_coef=0.1, ent_coef=0.01,
    ),
    ("dqn", "MinAtar"): dict(
        num_envs=1, learning_rate=2.5e-4, batch_size=32, buffer_size=100_000, learning_starts=5000,
        target_update_interval=1000, train_freq=1, gradient_steps=1, exploration_steps=100_000,
        end_eps=0.1, loss="huber",
    ),
    ("ppo", "ALE"): dict(
        num_envs=8, num_steps=128, num_minibatches=4, update_epochs=4, learning_rate=2.5e-4,
        clip_coef=0.1, ent_coef=0.01,
    ),
    ("dqn", "ALE"): dict(
        num_envs=1, learning_rate=1e-4, batch_size=32, buffer_size=100_000, learning_starts=80_000,
        target_update_interval=1000, train_freq=4, gradient_steps=1, exploration_steps=1_000_000,
        end_eps=0.01, max_grad_norm=10.0, loss="huber",
    ),
}


def config_class(algo: str):
    """``PPOConfig`` or ``DQNConfig`` for ``"ppo"`` / ``"dqn"`` (ValueError otherwise)."""
    if algo == "ppo":
        return PPOConfig
    if algo == "dqn":
        return DQNConfig
    raise ValueError(f"unknown algo {algo!r}; valid: {', '.join(ALGOS)}")


def preset_overrides(algo: str, env_id: str) -> dict:
    """The preset fields for ``algo`` on ``env_id`` (exact id, then its family
    ``MinAtar`` / ``ALE``; empty if none)."""
    config_class(algo)
    if (algo, env_id) in PRESETS:
        return dict(PRESETS[(algo, env_id)])
    family = env_id.split("/")[0]
    return dict(PRESETS.get((algo, family), {}))


def preset_config(algo: str, env_id: str, **overrides):
    """The algorithm's config with the env's preset applied, then ``overrides``."""
    cls = config_class(algo)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown {algo} config field(s): {', '.join(unknown)}")
    return cls(**{**preset_overrides(algo, env_id), **overrides})
