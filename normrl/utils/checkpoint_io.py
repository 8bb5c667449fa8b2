"""Checkpoint files that cannot run code: atomic writes of plain data, and the one
safe loader.

Every ``.pt`` file normrl writes holds only tensors, numbers, strings, bools, None and
lists / tuples / dicts of those (config dataclasses as plain dicts, RNG states as
tensors). :func:`save_plain` checks that before writing, so every file it writes loads
with ``torch.load(path, weights_only=True)``, and :func:`load_plain` reads files only
that way: a file whose pickle names any other global (``os.system``, a class, ...) is
refused with a :class:`~normrl.utils.errors.CheckpointError` naming the file and the
global, before any of it runs.

``trusted=True`` (the CLI's ``--trust-checkpoint``) is the explicit way round it, for a
file whose source you trust (e.g. one you wrote with an old version that pickled
objects): it warns, naming the file, and unpickles it in full, which can run code.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from normrl.utils.errors import CheckpointError

_PLAIN = (int, float, bool, str, type(None))
_ZIP_MAGIC = b"PK\x03\x04"


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """TypeError naming the first entry of ``obj`` that is not a tensor, number, string,
    bool, None or a list/tuple/dict of those (dict keys: str or int)."""
    if isinstance(obj, _PLAIN) or type(obj) is torch.Tensor or isinstance(obj, torch.nn.Parameter):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} of type {type(k).__name__} is not plain data")
            check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, not plain data "
                    "(tensors, numbers, strings, bools, None, lists/tuples/dicts): it would not load with weights_only")


def save_plain(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically (a temporary file in the same folder, fsynced,
    then renamed over ``path``; removed again on any error, e.g. a full disk), after
    :func:`check_plain`. Returns the path."""
    path = Path(path)
    check_plain(obj, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error_in(exc)
        if cause is not None and cause is not exc:
            # torch's zip writer reports a failed write (e.g. ENOSPC) as a RuntimeError
            # raised while closing; the OSError underneath is what happened
            raise cause from None
        raise
    return path


def _os_error_in(exc: BaseException) -> OSError | None:
    """The first OSError in ``exc``'s chain of causes/contexts (itself included)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _refusal_reason(exc: Exception) -> str:
    """What in the pickle ``torch.load(weights_only=True)`` refused, in a few words."""
    text = str(exc)
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return f"the global {m.group(1)}"
    m = re.search(r"Unsupported (operand|class) ([^\s.]+)", text)
    if m:
        return f"unsupported pickle {m.group(1)} {m.group(2)}"
    return "content other than tensors and plain data"


def load_plain(path: str | os.PathLike, *, trusted: bool = False, map_location: Any = "cpu") -> Any:
    """Read a checkpoint file with ``torch.load(weights_only=True)``.

    FileNotFoundError when ``path`` is missing; :class:`CheckpointError` (one line,
    naming the file) when it is unreadable or its pickle needs anything but tensors and
    plain data — then nothing of it has run. ``trusted=True`` loads such a file with
    full unpickling after a warning that names the file: only for files from a source
    you trust, since a pickle can run arbitrary code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(b"\x80")):  # torch's zip format, or a pickle (legacy format)
        raise CheckpointError(f"{path}: not a readable checkpoint (not a file written by torch.save)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():  # a broken pickle stream, not a refused one
            raise CheckpointError(f"{path}: not a readable checkpoint ({_one_line(exc)})") from None
        if not trusted:
            raise CheckpointError(
                f"{path}: refused to load: its pickle needs {_refusal_reason(exc)} (normrl checkpoints hold only tensors "
                "and plain data; unpickling anything else can run code). If you trust its source, pass "
                "--trust-checkpoint (Python: trusted=True)") from None
    except Exception as exc:  # corrupt, truncated or not a torch file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {_one_line(exc)})") from exc
    warnings.warn(f"{path}: loading with full unpickling because trusted=True (--trust-checkpoint): "
                  "its pickle can run arbitrary code", stacklevel=2)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {_one_line(exc)})") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
