"""Resume checks: a resumed run must be the run that was saved (same options, same
agent config), read back from the run directory's ``config.json``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from normrl.utils.errors import CheckpointError
from normrl.utils.run_dir import to_jsonable


def saved_section(logdir: str | Path, key: str, what: str) -> Any:
    """``config.json[key]`` of the run in ``logdir`` (CheckpointError if unreadable)."""
    path = Path(logdir) / "config.json"
    try:
        return json.loads(path.read_text())[key]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"--resume: cannot read the run's {what} from {path}: {exc}") from exc


def check_same_options(logdir: str | Path, key: str, options: dict, keys: Iterable[str], missing: dict | None = None) -> None:
    """``options[k]`` must equal the saved ``config.json[key][k]`` for every ``k`` in
    ``keys`` (CheckpointError listing every difference). ``missing``: the values of
    options that runs saved before the option existed ran with."""
    saved = {**(missing or {}), **saved_section(logdir, key, "options")}
    diff = [f"{k}: saved {saved.get(k)!r}, now {options[k]!r}" for k in keys if saved.get(k) != to_jsonable(options[k])]
    if diff:
        raise CheckpointError("--resume: options differ from the saved run (" + "; ".join(diff) + ")")


#: Agent-config fields a resumed run may change (they decide what happens when things go
#: wrong, not what the run computes).
MAY_CHANGE_ON_RESUME = ("on_divergence",)


def check_same_config(logdir: str | Path, config: Any) -> None:
    """The agent config of a resumed run must equal the saved one (fields the saved run
    did not have yet, and :data:`MAY_CHANGE_ON_RESUME`, are not compared)."""
    saved, now = saved_section(logdir, "config", "agent config"), to_jsonable(config)
    diff = [f"{k}: saved {saved[k]!r}, now {now[k]!r}" for k in now
            if k in saved and k not in MAY_CHANGE_ON_RESUME and saved[k] != now[k]]
    if diff:
        raise CheckpointError("--resume: the agent config differs from the saved run (" + "; ".join(diff) + ")")
