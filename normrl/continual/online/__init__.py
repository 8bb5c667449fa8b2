"""Online continual learning on class-split image streams (Split CIFAR, Split digits):
one pass, replay from a reservoir buffer, ER / ER-ACE / DER++ (the protocol AdaB²N was
shown on, arXiv 2310.08855).

Public names: :class:`OnlineCLConfig`, :class:`OnlineCLTrainer`, :func:`train_online`,
:class:`ReservoirBuffer`, :data:`METHODS`.
"""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "ReservoirBuffer": "buffer",
    "OnlineCLConfig": "trainer",
    "OnlineCLTrainer": "trainer",
    "train_online": "trainer",
    "METHODS": "methods",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
