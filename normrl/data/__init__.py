"""Supervised data: CIFAR download/verify/load, scikit-learn's digits, class-split
streams and dataset tasks.

Public names: :class:`SplitDataset`, :func:`SplitCIFAR`, :func:`split_digits`, :func:`load_split`,
:func:`load_cifar`, :func:`download_cifar`, :class:`SupervisedTask`,
:func:`permuted_digits_tasks`, :func:`load_digits_tensors`.
"""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "SplitDataset": "split",
    "SplitCIFAR": "split",
    "split_digits": "split",
    "load_split": "split",
    "load_cifar": "cifar",
    "download_cifar": "cifar",
    "CifarError": "cifar",
    "SupervisedTask": "supervised",
    "permuted_digits_tasks": "supervised",
    "load_digits_tensors": "digits",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
