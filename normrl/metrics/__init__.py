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
    "hessian_top_eigenvalue": "hessian",
    "heavy_tail_alpha": "heavy_tail",
    "layer_heavy_tail_alphas": "heavy_tail",
    "power_law_alpha": "heavy_tail",
    "farms_eigenvalues": "heavy_tail",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
