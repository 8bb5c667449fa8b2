"""``make_env``: build any normrl environment by id.

Ids map to ``"module:factory"`` strings so that heavy or optional dependencies
(ale-py) load only for the ids that need them. ``ALE/<Game>-v5`` is matched by
pattern, since any ROM that ale-py ships is valid.
"""
from __future__ import annotations

import importlib
import re

import torch

from normrl.envs.base import TensorEnv

ENV_IDS: dict[str, str] = {
    "CartPole-v1": "normrl.envs.cartpole:CartPoleEnv",
    "MinAtar/Breakout": "normrl.envs.minatar.breakout:BreakoutEnv",
    "MinAtar/Asterix": "normrl.envs.minatar.asterix:AsterixEnv",
    "MinAtar/Freeway": "normrl.envs.minatar.freeway:FreewayEnv",
    "MinAtar/Seaquest": "normrl.envs.minatar.seaquest:SeaquestEnv",
    "MinAtar/SpaceInvaders": "normrl.envs.minatar.space_invaders:SpaceInvadersEnv",
}
ALE_PATTERN = re.compile(r"^ALE/([A-Za-z0-9]+)-v5$")
ALE_FACTORY = "normrl.envs.atari:AtariEnv"


def list_envs() -> list[str]:
    """The registered env ids (plus the ``ALE/<Game>-v5`` pattern)."""
    return [*ENV_IDS, "ALE/<Game>-v5"]


def _load(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def make_env(env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", seed: int | None = None, **kwargs) -> TensorEnv:
    """Make ``num_envs`` batched copies of ``env_id`` on ``device``.

    ``seed`` seeds the env's own generator (``reset`` may reseed it). Extra keyword
    arguments go to the env's constructor (e.g. ``full_action_space=True``).
    Unknown ids raise ``ValueError`` listing the valid ones.
    """
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    match = ALE_PATTERN.match(env_id)
    if env_id in ENV_IDS:
        factory = _load(ENV_IDS[env_id])
        env = factory(num_envs=num_envs, device=torch.device(device), seed=seed, **kwargs)
    elif match:
        factory = _load(ALE_FACTORY)
        env = factory(match.group(1), num_envs=num_envs, device=torch.device(device), seed=seed, **kwargs)
    else:
        raise ValueError(f"unknown env id {env_id!r}; valid ids: {', '.join(list_envs())}")
    env.spec_id = env_id
    return env
