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
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_jsonable(obj), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:  # e.g. a full disk: leave no half-written temporary file
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def environment_info() -> dict[str, Any]:
    """Versions and machine facts recorded with every run."""
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_config(logdir: str | os.PathLike, config: Any, **extra: Any) -> Path:
    """Write ``logdir/config.json`` holding ``config`` and the environment facts."""
    payload = {"config": to_jsonable(config), "environment": environment_info(), **to_jsonable(extra)}
    return write_json(Path(logdir) / "config.json", payload)


def write_summary(logdir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Write ``logdir/summary.json``."""
    return write_json(Path(logdir) / "summary.json", summary)


def check_logdir(logdir: str | os.PathLike) -> Path:
    """Create the run directory ``logdir`` if needed and check that files can be made
    in it; a path that is a file, lies under a file, or cannot be created or written is
    a :class:`~normrl.utils.errors.UserError` (one line). A full disk stays an OSError
    (a runtime failure, not a bad argument). Returns the path."""
    import errno

    from normrl.utils.errors import UserError

    path = Path(logdir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--logdir {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UserError(f"--logdir {path}: cannot create or write it ({exc.strerror or exc})") from None
    return path
