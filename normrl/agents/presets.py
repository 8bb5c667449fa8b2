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
* DQN, ALE: rl-baselines3-zoo ``hyperparams/dqn.yml``, entry ``atari`` (the zoo's tuned
  Atari DQN, itself Mnih et al. 2015 "Human-level control through deep RL", Nature,
  with Adam): learning rate 1e-4, batch 32, replay 100,000 transitions, learning starts
  100,000, one update every 4 agent steps, target update every 1,000 steps, epsilon
  1.0 -> 0.01 over the first 10% of the 10M-step budget (1,000,000 steps), Huber loss,
  gradient-norm clip 10 (SB3's DQN default), one env. The replay buffer is the zoo's
  100k, not the Nature paper's (or CleanRL's) 1M: the buffer stores ``obs`` and
  ``next_obs`` as uint8 (2 x 4 x 84 x 84 bytes per transition), so 1M would need 56 GB,
  100k needs 5.6 GB. (CleanRL's ``dqn_atari.py`` starts learning at 80,000 steps; the
  zoo's 100,000 goes with the zoo's buffer.)
* PPO, ALE: rl-baselines3-zoo ``hyperparams/ppo.yml``, entry ``atari`` (= CleanRL
  ``ppo_atari.py``, Schulman et al. 2017, arXiv 1707.06347): 8 envs x 128 steps, 4
  epochs, 4 minibatches, learning rate 2.5e-4 linearly decayed, clip 0.1, entropy 0.01,
  value coefficient 0.5, GAE 0.95, gamma 0.99.

Per-game scripts (``scripts/train_atari.py``, ``scripts/train_minatar.py``) add the
training-env conventions and budgets below: Atari training envs follow the DQN Nature
conventions (loss of life ends the training episode, rewards clipped to their sign;
reported returns stay the raw game score), :data:`ATARI_ENV_KWARGS`; budgets are 10M
agent steps per Atari game (the budget the zoo's and CleanRL's benchmark tables report
for every game they list; these sources use one setting for every game) and 5M per
MinAtar game (the MinAtar paper's).
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
        num_envs=1, learning_rate=1e-4, batch_size=32, buffer_size=100_000, learning_starts=100_000,
        target_update_interval=1000, train_freq=4, gradient_steps=1, exploration_steps=1_000_000,
        start_eps=1.0, end_eps=0.01, gamma=0.99, max_grad_norm=10.0, loss="huber",
    ),
}

#: Training-env options (``make_env`` keywords) of the per-game Atari script.
ATARI_ENV_KWARGS: dict = {"episodic_life": True, "clip_rewards": True}
ATARI_DEFAULT_STEPS = 10_000_000
MINATAR_DEFAULT_STEPS = 5_000_000
MINATAR_GAMES: dict[str, str] = {
    "breakout": "Breakout", "asterix": "Asterix", "freeway": "Freeway",
    "seaquest": "Seaquest", "space_invaders": "SpaceInvaders",
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


def atari_env_id(game: str) -> str:
    """``ALE/<Game>-v5`` for a game name (``Pong``, ``pong``, ``ms_pacman`` ...);
    ValueError naming close matches when ale-py has no such ROM."""
    from normrl.envs.atari import ale_env_id

    return ale_env_id(game)


def minatar_env_id(game: str) -> str:
    """``MinAtar/<Game>`` for ``breakout``, ``asterix``, ``freeway``, ``seaquest``,
    ``space_invaders`` (the CamelCase names work too); ValueError listing them."""
    key = game.lower().replace("-", "_")
    by_camel = {v.lower(): k for k, v in MINATAR_GAMES.items()}
    key = by_camel.get(key, key)
    if key not in MINATAR_GAMES:
        raise ValueError(f"unknown MinAtar game {game!r}; valid: {', '.join(MINATAR_GAMES)}")
    return f"MinAtar/{MINATAR_GAMES[key]}"


def game_preset(family: str, game: str) -> dict:
    """``{"env_id", "env_kwargs", "steps"}`` of the per-game scripts for ``game`` of
    ``family`` (``"atari"`` / ``"minatar"``); the agent config is the library preset of
    the env id (:func:`preset_config`)."""
    if family == "atari":
        return {"env_id": atari_env_id(game), "env_kwargs": dict(ATARI_ENV_KWARGS), "steps": ATARI_DEFAULT_STEPS}
    if family == "minatar":
        return {"env_id": minatar_env_id(game), "env_kwargs": {}, "steps": MINATAR_DEFAULT_STEPS}
    raise ValueError(f"unknown game family {family!r}; valid: atari, minatar")
