"""Orchestration: the library entry points behind every command and script.

:func:`train_single` (one agent on one env), :func:`train_seeds` (several
seeds of one PPO agent stacked in one process) and :func:`train_stream` (one agent on a
continual stream) take config objects and overrides as arguments and own the run
directory: ``config.json``, checkpoints, SIGINT/SIGTERM handling, ``--resume`` checks
and ``summary.json``; ``train_stream(..., fresh_agent=True)`` is the fresh-agent oracle
(:func:`visit_agent_seed`, :class:`StepOffsetWriter`). :func:`resolve_device` is the one device check, and
:func:`run_status` tells whether a run directory is finished, resumable or fresh.
"""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "train_single": "single",
    "train_seeds": "seeds",
    "train_stream": "stream",
    "visit_agent_seed": "stream",
    "StepOffsetWriter": "step_offset_writer",
    "resolve_device": "device",
    "run_status": "status",
    "StopSignals": "signals",
    "SuitePlan": "plasticity_suite",
    "run_suite": "plasticity_suite",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
