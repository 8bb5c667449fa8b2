"""Find and read run directories: every folder under a root that holds a ``config.json``
written by :func:`normrl.runs.train_single` (a ``"run"`` block) or
:func:`normrl.runs.train_stream` (a ``"continual"`` block), with its ``summary.json``.

A run's *task* is its env id (single-env runs) or its stream name (continual runs); its
*settings* are everything else that was set except the seed: the agent config
(``config`` block) and the run options (``run`` / ``continual`` block). Runs of one task
that differ in their settings belong to different *arms*; :func:`arm_labels` names each
arm by the settings that differ between runs of the same task, so one arm spans tasks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV, STREAM = "env", "stream"
#: Options that identify the task or the seed, not the arm.
_NOT_ARM = {"seed", "env_id", "stream"}


def summary_status(summary: dict) -> str:
    """``"finished"``, ``"diverged"`` or ``"stopped"``: the summary's ``status`` field
    where the trainer writes one, else its ``finished`` flag (single-env runs) or the
    return matrix's ``completed`` (continual runs)."""
    status = summary.get("status")
    if status in ("finished", "stopped", "diverged"):
        return status
    done = summary.get("finished") is True or (summary.get("continual") or {}).get("completed") is True
    return "finished" if done else "stopped"


def summary_score(summary: dict) -> float | None:
    """One number per run: the mean return of the last 100 training episodes
    (single-env runs) or the mean of the return matrix's last row (continual runs);
    None when there is none."""
    continual = summary.get("continual")
    if continual is not None:
        rows = continual.get("returns") or []
        row = [v for v in (rows[-1] if rows else []) if v is not None]
        return sum(row) / len(row) if row else None
    return summary.get("mean_return_last_100")


@dataclass
class RunDir:
    """One run directory.

    Attributes:
        path: the directory; ``name``: its path relative to the root searched.
        kind: ``"env"`` or ``"stream"``.
        algo, task, seed: the algorithm, the env id or stream name, the seed.
        settings: the arm's settings (agent config and run options without the seed and
            the task), as JSON values.
        summary: ``summary.json`` (None when the run has none yet).
        status: :func:`summary_status`, or ``"no summary"``.
    """

    path: Path
    name: str
    kind: str
    algo: str
    task: str
    seed: int
    settings: dict[str, Any]
    summary: dict | None
    status: str

    @property
    def total_steps(self) -> int | None:
        """The run's planned env steps (``steps``, or steps per task x tasks x cycles)."""
        if self.kind == ENV:
            return self.settings.get("steps")
        continual = (self.summary or {}).get("continual")
        if continual and continual.get("eval_steps") and continual.get("completed"):
            return continual["eval_steps"][-1]
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_run(path: str | Path, root: str | Path | None = None) -> RunDir | None:
    """The :class:`RunDir` in ``path``, or None when ``path`` holds no normrl run (no
    readable ``config.json`` with a ``run`` or ``continual`` block)."""
    path = Path(path)
    config = _read_json(path / "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        return None
    if isinstance(config.get("run"), dict):
        kind, options = ENV, config["run"]
        task = options.get("env_id")
    elif isinstance(config.get("continual"), dict):
        kind, options = STREAM, config["continual"]
        task = options.get("stream")
    else:
        return None
    agent = config["config"]
    settings = {k: v for k, v in {**agent, **options}.items() if k not in _NOT_ARM}
    settings["algo"] = options.get("algo", config.get("algo"))
    summary = _read_json(path / "summary.json")
    summary = summary if isinstance(summary, dict) else None
    status = summary_status(summary) if summary is not None else "no summary"
    name = str(path.relative_to(root)) if root is not None else path.name
    return RunDir(path, name, kind, str(settings["algo"]), str(task), int(agent.get("seed", options.get("seed", 0))),
                  settings, summary, status)


def find_runs(root: str | Path) -> list[RunDir]:
    """Every run directory under ``root`` (``root`` itself included), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    runs = []
    for config in sorted(root.rglob("config.json")):
        run = read_run(config.parent, root)
        if run is not None:
            runs.append(run)
    return runs


def format_setting(value: Any) -> str:
    """A setting as it appears in arm labels: ``true``/``false``, ``none``, exact floats,
    lists as ``64x64``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "x".join(format_setting(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{format_setting(v)}" for k, v in sorted(value.items()))
    return str(value)


def arm_labels(runs: list[RunDir]) -> dict[Path, str]:
    """``{run.path: arm label}``. The label is the norm, the interventions (if any), then
    ``key=value`` for each setting that differs between runs of one task (other than
    the seed), and the algorithm first when the runs use several. Runs of different tasks
    with the same label are the same arm: settings that differ only between tasks (each
    env's preset) do not split arms."""
    by_task: dict[str, list[RunDir]] = {}
    for run in runs:
        by_task.setdefault(run.task, []).append(run)
    varying: set[str] = set()
    for group in by_task.values():
        keys = set().union(*(r.settings for r in group))
        for k in keys:
            values = {json.dumps(r.settings.get(k), sort_keys=True, default=str) for r in group}
            if len(values) > 1:
                varying.add(k)
    several_algos = len({r.algo for r in runs}) > 1
    labels: dict[Path, str] = {}
    for run in runs:
        parts = [format_setting(run.settings.get("norm", "none"))]
        if run.settings.get("interventions"):
            parts.append("+".join(format_setting(v) for v in run.settings["interventions"]))
        parts += [f"{k}={format_setting(run.settings.get(k))}" for k in sorted(varying - {"norm", "algo", "interventions"})]
        labels[run.path] = (f"{run.algo} " if several_algos else "") + " ".join(parts)
    return labels
