"""Plasticity metrics (pure functions) and the TensorBoard PlasticityMonitor."""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "dormant_ratio": "functional",
    "active_fraction": "functional",
    "srank": "functional",
    "effective_rank": "functional",
    "stable_rank": "functional",
    "feature_norm": "functional",
    "PlasticityMonitor": "monitor",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
