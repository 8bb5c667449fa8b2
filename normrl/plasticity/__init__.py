"""Plasticity interventions: the methods plasticity papers compare against, behind one
protocol (:class:`Intervention`) and one registry.

``build_interventions(["redo:tau=0.1,every=1000", "l2_init:lam=1e-4"], seed=0)``
returns a :class:`Compose` that a training loop attaches to its model and optimizer
and calls at fixed points (penalty before backward, ``after_step`` after the optimizer
step, task hooks); see :mod:`normrl.plasticity.base` for the calling contract and
docs/plasticity.md for every method's paper, exact variant and defaults.
``list_interventions()`` names the registered methods. CReLU is an activation, not an
intervention: :class:`CReLU` and :func:`crelu_hidden_widths`.
"""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "Intervention": "base",
    "make_generator": "base",
    "register_intervention": "registry",
    "list_interventions": "registry",
    "intervention_entries": "registry",
    "create_intervention": "registry",
    "get_intervention_class": "registry",
    "parse_intervention_spec": "spec",
    "build_interventions": "spec",
    "Compose": "compose",
    "rebind_optimizer": "rebind",
    "CReLU": "crelu",
    "crelu_hidden_widths": "crelu",
    "InjectedHead": "injection",
    "ReDo": "redo",
    "ContinualBackprop": "cbp",
    "trace_hidden_units": "units",
    "zero_state_slices": "optim_state",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
