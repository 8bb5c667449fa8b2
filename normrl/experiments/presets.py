"""Per-game training presets of ``scripts/train_atari.py`` and ``scripts/train_minatar.py``.

Atari (``ALE/<Game>-v5``; one agent step = 4 frames):

* DQN: rl-baselines3-zoo ``hyperparams/dqn.yml``, entry ``atari`` (the zoo's tuned
  Atari DQN, itself Mnih et al. 2015 "Human-level control through deep RL", Nature,
  with Adam): learning rate 1e-4, batch 32, replay 100,000 transitions, learning
  starts 100,000, one update every 4 agent steps, target update every 1,000 steps,
  epsilon 1.0 -> 0.01 over the first 10% of the 10M-step budget (1,000,000 steps),
  Huber loss, gradient-norm clip 10 (SB3's DQN default), one env. Training env uses
  the DQN Nature conventions: loss of life ends the training episode and rewards are
  clipped to their sign (reported returns stay the raw game score).
* PPO: rl-baselines3-zoo ``hyperparams/ppo.yml``, entry ``atari`` (= CleanRL
  ``ppo_atari.py``, Schulman et al. 2017, arXiv 1707.06347): 8 envs x 128 steps, 4
  epochs, 4 minibatches (256), learning rate 2.5e-4 linearly decayed, clip 0.1,
  entropy 0.01, value coefficient 0.5, GAE 0.95, gamma 0.99; same training-env
  conventions.

These public sources use one setting for every game; the only per-game entries they
carry are budgets. :data:`ATARI_GAME_STEPS` records the budget that the zoo's and
CleanRL's benchmark tables report for a game (10M agent steps for each game they list);
other games get :data:`ATARI_DEFAULT_STEPS`, the same 10M. The replay buffer is the
zoo's 100k, not the Nature paper's 1M: normrl's buffer stores ``obs`` and
``next_obs`` (2 x 4 x 84 x 84 bytes per transition), so 1M would need 56 GB.

MinAtar (``MinAtar/<Game>``): the library presets of :mod:`normrl.agents.presets`
(DQN: Young & Tian 2019, arXiv 1903.03176; PPO: CleanRL's Atari PPO with 64 envs),
5M steps per game as in the MinAtar paper.
"""
from __future__ import annotations

ATARI_DEFAULT_STEPS = 10_000_000
#: Games with a published 10M-step benchmark run in rl-baselines3-zoo / CleanRL.
ATARI_GAME_STEPS: dict[str, int] = {
    "Pong": 10_000_000,
    "Breakout": 10_000_000,
    "BeamRider": 10_000_000,
    "SpaceInvaders": 10_000_000,
    "Qbert": 10_000_000,
    "Seaquest": 10_000_000,
    "Enduro": 10_000_000,
    "MsPacman": 10_000_000,
    "Asteroids": 10_000_000,
    "RoadRunner": 10_000_000,
}

#: Agent config fields per algorithm (applied over normrl.agents.presets' ``ALE`` family preset).
ATARI_CONFIG: dict[str, dict] = {
    "dqn": dict(
        num_envs=1, learning_rate=1e-4, batch_size=32, buffer_size=100_000, learning_starts=100_000,
        train_freq=4, gradient_steps=1, target_update_interval=1000, exploration_steps=1_000_000,
        start_eps=1.0, end_eps=0.01, gamma=0.99, loss="huber", max_grad_norm=10.0,
    ),
    "ppo": dict(
        num_envs=8, num_steps=128, update_epochs=4, num_minibatches=4, learning_rate=2.5e-4,
        lr_schedule="linear", clip_coef=0.1, ent_coef=0.01, vf_coef=0.5, gae_lambda=0.95, gamma=0.99,
    ),
}
#: Training-env options (``make_env`` keywords) for Atari training.
ATARI_ENV_KWARGS: dict = {"episodic_life": True, "clip_rewards": True}

MINATAR_GAMES: dict[str, str] = {
    "breakout": "Breakout", "asterix": "Asterix", "freeway": "Freeway",
    "seaquest": "Seaquest", "space_invaders": "SpaceInvaders",
}
MINATAR_DEFAULT_STEPS = 5_000_000


def atari_env_id(game: str) -> str:
    """``ALE/<Game>-v5`` for a game name (``Pong``, ``pong``, ``ms_pacman`` ...);
    ValueError naming close matches when ale-py has no such ROM."""
    from normrl.envs.atari import rom_id

    rom = rom_id(game)
    return f"ALE/{''.join(part.capitalize() for part in rom.split('_'))}-v5"


def atari_preset(game: str, algo: str) -> dict:
    """``{"env_id", "config", "env_kwargs", "steps"}`` for ``algo`` on Atari ``game``."""
    if algo not in ATARI_CONFIG:
        raise ValueError(f"unknown algo {algo!r}; valid: {', '.join(ATARI_CONFIG)}")
    env_id = atari_env_id(game)
    camel = env_id[len("ALE/"):-len("-v5")]
    return {"env_id": env_id, "config": dict(ATARI_CONFIG[algo]), "env_kwargs": dict(ATARI_ENV_KWARGS),
            "steps": ATARI_GAME_STEPS.get(camel, ATARI_DEFAULT_STEPS)}


def minatar_preset(game: str, algo: str) -> dict:
    """``{"env_id", "config", "env_kwargs", "steps"}`` for ``algo`` on MinAtar ``game``
    (``breakout``, ``asterix``, ``freeway``, ``seaquest``, ``space_invaders``; the
    CamelCase names work too)."""
    from normrl.agents.presets import config_class

    config_class(algo)
    key = game.lower().replace("-", "_")
    by_camel = {v.lower(): k for k, v in MINATAR_GAMES.items()}
    key = by_camel.get(key, key)
    if key not in MINATAR_GAMES:
        raise ValueError(f"unknown MinAtar game {game!r}; valid: {', '.join(MINATAR_GAMES)}")
    return {"env_id": f"MinAtar/{MINATAR_GAMES[key]}", "config": {}, "env_kwargs": {}, "steps": MINATAR_DEFAULT_STEPS}
