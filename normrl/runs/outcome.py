"""How a run ended, as ``summary.json`` records it.

Every ``summary.json`` that :func:`~normrl.runs.train_single` and
:func:`~normrl.runs.train_stream` write has ``status``:

* ``"finished"``: the whole budget was trained;
* ``"stopped"``: a SIGINT/SIGTERM stopped it at a checkpoint (``--resume`` continues);
* ``"diverged"``: a non-finite loss, gradient norm, parameter or statistic stopped it
  (``summary["divergence"]``: ``env_step``, ``update``, ``cause``, ``parameter``,
  ``last_checkpoint``); the checkpoint on disk is the last one with finite parameters.

(the continual scheduler's per-visit summaries say ``"running"``). A run directory whose
summary is missing, or still says ``"running"``, belongs to a run that crashed or is
still going, which is how sweeps tell crashed trials from diverged ones.
"""
from __future__ import annotations

from pathlib import Path

from normrl.runs.checkpoints import latest_checkpoint
from normrl.utils.errors import TrainingDiverged

STATUSES = ("finished", "stopped", "diverged")


def finish_status(finished: bool) -> str:
    """``"finished"`` when the budget was trained, else ``"stopped"`` (by a signal)."""
    return "finished" if finished else "stopped"


def divergence_report(exc: TrainingDiverged, logdir: str | Path) -> TrainingDiverged:
    """``exc`` with the run's last good checkpoint added to its facts and message."""
    ckpt = latest_checkpoint(logdir)
    facts = {**exc.facts, "last_checkpoint": None if ckpt is None else str(ckpt)}
    where = f"last good checkpoint: {ckpt}" if ckpt is not None else f"no checkpoint was written in {logdir} yet"
    return TrainingDiverged(f"{exc}; {where}", facts)
