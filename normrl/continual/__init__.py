"""Online continual learning on class-split image streams (Split CIFAR, Split digits).

Public names: :class:`ReservoirBuffer`, :class:`OnlineCLConfig`, :class:`OnlineCLTrainer`,
:func:`train_online`, and the metrics :func:`final_average_accuracy`,
:func:`average_forgetting`, :func:`backward_transfer`.
"""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "ReservoirBuffer": "buffer",
    "OnlineCLConfig": "trainer",
    "OnlineCLTrainer": "trainer",
    "train_online": "trainer",
    "METHODS": "methods",
    "final_average_accuracy": "metrics",
    "average_forgetting": "metrics",
    "backward_transfer": "metrics",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
