"""Where a run directory stands: finished, diverged, resumable, or to be started (what
sweeps, the plasticity suite and the comparison scripts use to skip and resume runs)."""
from __future__ import annotations

import json
from pathlib import Path

from normrl.runs.checkpoints import has_checkpoint

DONE, DIVERGED, RESUME, FRESH = "done", "diverged", "resume", "fresh"


def run_status(logdir: str | Path) -> str:
    """``"done"`` when ``summary.json`` says the run finished (``"finished": true``, or a
    continual summary whose matrix is ``"completed"``), ``"diverged"`` when it says
    ``"status": "diverged"`` (resuming would repeat the divergence from the same
    checkpoint), ``"resume"`` when a checkpoint exists, else ``"fresh"``."""
    summary = Path(logdir) / "summary.json"
    if summary.is_file():
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("status") == DIVERGED:
            return DIVERGED
        if data.get("finished") is True or (data.get("continual") or {}).get("completed") is True:
            return DONE
    return RESUME if has_checkpoint(logdir) else FRESH
