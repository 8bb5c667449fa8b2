"""Batched torch environments (TensorEnv), real Atari through ale-py, CIFAR data and
continual task streams.

Public names: :func:`make_env`, :class:`TensorEnv`, :class:`TaskScheduler`,
:class:`SplitCIFAR`.
"""
from normrl._lazy import lazy_exports
from normrl.envs.base import TensorEnv
from normrl.envs.registry import list_envs, make_env

_EXPORTS = {
    "TaskScheduler": "scheduler",
    "Task": "scheduler",
    "list_streams": "streams",
    "SplitCIFAR": "split_cifar",
    "TensorToGymVectorEnv": "gym_adapter",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["make_env", "list_envs", "TensorEnv", *_EXPORTS]
