"""Normalization layers, Normalize-and-Project and optimizer wrappers.

Public names: :func:`list_norms`, :func:`get_norm_layer`, :func:`create_norm_layer`, :func:`is_nap`,
:func:`register_norm`, :func:`apply_nap`, :class:`NaPProjector`,
:class:`ProjectedOptimizer`, :class:`AdamP`, :class:`SGDP`, the LR schedules and
:func:`reset_optimizer_state`.
"""
from normrl._lazy import lazy_exports
from normrl.normalization.registry import create_norm_layer, get_norm_layer, is_nap, list_norms, register_norm

_EXPORTS = {
    "apply_nap": "nap",
    "NaPProjector": "nap",
    "ProjectedOptimizer": "projected_optimizer",
    "NaPOptimizer": "projected_optimizer",
    "NaPAdam": "projected_optimizer",
    "NaPSGD": "projected_optimizer",
    "is_normalization": "nap",
    "nap_sequential_schedule": "schedules",
    "AdamP": "adamp",
    "SGDP": "adamp",
    "LRSchedule": "schedules",
    "make_lr_schedule": "schedules",
    "reset_optimizer_state": "optimizer_reset",
    "adab2n_task_ids": "layers.adab2n",
    "adab2n_aux_loss": "layers.adab2n",
    "WSConv2d": "ws_conv",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["list_norms", "get_norm_layer", "create_norm_layer", "register_norm", "is_nap", *_EXPORTS]
