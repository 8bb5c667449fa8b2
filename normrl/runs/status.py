"""Where a run directory stands: finished, resumable, or to be started (what sweeps,
the plasticity suite and the comparison scripts use to skip and resume runs)."""
from __future__ import annotations

import json
from pathlib import Path

from normrl.runs.checkpoints import has_checkpoint

DONE, RESUME, FRESH = "done", "resume", "fresh"


def run_status(logdir: str | Path) -> str:
    """``"done"`` when ``summary.json`` says the run finished (``"finished": true``, or a
    continual summary whose matrix is ``"completed"``), ``"resume"`` when a checkpoint
    exists, else ``"fresh"``."""
    summary = Path(logdir) / "summary.json"
    if summary.is_file():
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("finished") is True or (data.get("continual") or {}).get("completed") is True:
            return DONE
    return RESUME if has_checkpoint(logdir) else FRESH
