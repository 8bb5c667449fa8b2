"""Run-directory checkpoints of ``normrl train`` and ``normrl continual``.

Layout under the run directory::

    checkpoints/step_<N>/agent.pt        the agent (``agent.save``)
    checkpoints/step_<N>/run_state.json  the run's own position (e.g. the stream scheduler)
    checkpoints/latest.json              names the newest complete checkpoint

A checkpoint is written into a temporary folder and renamed into place, and
``latest.json`` is replaced last, so an interrupted save never leaves a half-written
"latest". Older checkpoints are removed once the new one is in place. An agent with a
non-finite parameter is never saved (``agent.save`` raises
:class:`~normrl.utils.errors.TrainingDiverged`), so the last good checkpoint stays.
``agent.pt`` holds tensors and plain data only and is read with
``torch.load(weights_only=True)`` (:mod:`normrl.utils.checkpoint_io`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from normrl.utils.errors import CheckpointError
from normrl.utils.run_dir import write_json

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.json"
AGENT_FILE = "agent.pt"
STATE_FILE = "run_state.json"


def checkpoint_root(logdir: str | Path) -> Path:
    """``logdir/checkpoints``."""
    return Path(logdir) / CHECKPOINT_DIR


def has_checkpoint(logdir: str | Path) -> bool:
    """Whether ``logdir`` holds a complete checkpoint (its ``latest.json`` exists)."""
    return (checkpoint_root(logdir) / LATEST).is_file()


def save_checkpoint(logdir: str | Path, agent, state: dict[str, Any] | None = None) -> Path:
    """Write ``step_<N>/{agent.pt, run_state.json}`` (``state`` plus the agent's step
    count), then point ``latest.json`` at it; return the folder."""
    root = checkpoint_root(logdir)
    name = f"step_{int(agent.num_steps):012d}"
    target, tmp = root / name, root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        agent.save(tmp / AGENT_FILE)
        write_json(tmp / STATE_FILE, {**(state or {}), "agent_num_steps": int(agent.num_steps)})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    write_json(root / LATEST, {"checkpoint": name, "num_steps": int(agent.num_steps)})
    for old in root.glob("step_*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(logdir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of ``logdir`` (None when there is none or
    ``latest.json`` is unreadable)."""
    try:
        return checkpoint_root(logdir) / json.loads((checkpoint_root(logdir) / LATEST).read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_latest(logdir: str | Path) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint's folder and its run state (with ``agent_num_steps``);
    CheckpointError when there is none or it is unreadable."""
    latest = checkpoint_root(logdir) / LATEST
    if not latest.is_file():
        raise CheckpointError(f"--resume: no checkpoint in {logdir} (missing {latest})")
    try:
        folder = checkpoint_root(logdir) / json.loads(latest.read_text())["checkpoint"]
        state = json.loads((folder / STATE_FILE).read_text())
        state["agent_num_steps"] = int(state["agent_num_steps"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"--resume: corrupt checkpoint in {logdir}: {exc}") from exc
    if not (folder / AGENT_FILE).is_file():
        raise CheckpointError(f"--resume: corrupt checkpoint in {logdir}: {folder / AGENT_FILE} is missing")
    return folder, state


def restore_agent(agent, folder: Path, state: dict[str, Any], trusted: bool = False) -> None:
    """Load ``folder/agent.pt`` into ``agent`` and check it is the step the run state
    was saved at (CheckpointError otherwise). ``trusted``: as in ``agent.load``."""
    agent.load(folder / AGENT_FILE, trusted=trusted)
    if int(agent.num_steps) != state["agent_num_steps"]:
        raise CheckpointError(f"--resume: {folder} is inconsistent (agent at {agent.num_steps} steps, "
                              f"run state saved at {state['agent_num_steps']})")
