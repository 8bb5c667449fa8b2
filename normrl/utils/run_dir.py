"""Run directories: ``config.json`` at start, ``summary.json`` at the end.

Every training command writes its full configuration beside its TensorBoard logs
before the first step, so a run can always be traced back to its settings.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths, devices, tensors and numpy scalars as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (Path, torch.device, torch.dtype)):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if isinstance(obj, type) or callable(obj):
        return getattr(obj, "__qualname__", repr(obj))
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(to_jsonable(obj), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def environment_info() -> dict[str, Any]:
    """Versions and machine facts recorded with every run."""
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_config(logdir: str | os.PathLike, config: Any, **extra: Any) -> Path:
    """Write ``logdir/config.json`` holding ``config`` and the environment facts."""
    payload = {"config": to_jsonable(config), "environment": environment_info(), **to_jsonable(extra)}
    return write_json(Path(logdir) / "config.json", payload)


def write_summary(logdir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Write ``logdir/summary.json``."""
    return write_json(Path(logdir) / "summary.json", summary)
