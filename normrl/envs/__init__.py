"""Environments only: batched torch environments (TensorEnv: CartPole, MinAtar), real
Atari through ale-py, the gymnasium adapter, env wrappers (permutations) and the one-env-per-seed
batch of a seed axis.

Public names: :func:`make_env`, :func:`list_envs`, :class:`TensorEnv`,
:class:`TensorEnvWrapper`, :class:`PermutedObservations`, :class:`PermutedActions`,
:class:`TensorToGymVectorEnv`, :class:`SeedBlocks`, :func:`make_seed_env`.
"""
from normrl._lazy import lazy_exports
from normrl.envs.base import TensorEnv
from normrl.envs.registry import list_envs, make_env

_EXPORTS = {
    "TensorEnvWrapper": "wrappers",
    "PermutedObservations": "wrappers",
    "PermutedActions": "wrappers",
    "TensorToGymVectorEnv": "gym_adapter",
    "SeedBlocks": "seed_blocks",
    "make_seed_env": "seed_blocks",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["make_env", "list_envs", "TensorEnv", *_EXPORTS]
