"""Environments only: batched torch environments (TensorEnv: CartPole, MinAtar), real
Atari through ale-py, the gymnasium adapter, and env wrappers (permutations).

Public names: :func:`make_env`, :func:`list_envs`, :class:`TensorEnv`,
:class:`TensorEnvWrapper`, :class:`PermutedObservations`, :class:`PermutedActions`,
:class:`TensorToGymVectorEnv`.
"""
from normrl._lazy import lazy_exports
from normrl.envs.base import TensorEnv
from normrl.envs.registry import list_envs, make_env

_EXPORTS = {
    "TensorEnvWrapper": "wrappers",
    "PermutedObservations": "wrappers",
    "PermutedActions": "wrappers",
    "TensorToGymVectorEnv": "gym_adapter",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["make_env", "list_envs", "TensorEnv", *_EXPORTS]
