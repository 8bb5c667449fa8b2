"""The continual-RL plasticity report: per-visit returns from the run directories of
:mod:`normrl.runs.plasticity_rl`, plasticity retained per arm against the fresh-agent
oracle with a 95% bootstrap interval, a Markdown table, the loss-of-plasticity gate and
PNG plots, all regenerated from the run directories alone.

Per task visit (:func:`visit_records`, stored in each finished run's ``summary.json``
under ``"tasks"``):

* ``train_return``: the mean training episode return (sampled actions,
  ``charts/episode_return``) logged within the last ``tail`` fraction of the visit
  (default the last quarter): the return the agent *reached* on the task;
* ``eval_return``: the greedy evaluation return of the visit's task right after the
  visit (the diagonal of the return matrix);
* ``dormant_ratio`` and ``weight_norm``: the last values of
  ``plasticity/dormant_ratio/all`` and ``plasticity/weight_norm/all`` logged within the
  visit (the agent's :class:`~normrl.metrics.PlasticityMonitor`).

Headline per arm, **plasticity retained** = the arm's mean ``train_return`` over the
last ``window`` visits (5) divided by the oracle's (``fresh``, a new plain agent per
visit) mean over the same visits, means over seeds first (a ratio of means, the
definition of the supervised suite's report). A norm can raise this ratio by learning
*any* task better, kept plasticity or not; when the plan has a fresh agent with the same
norm (arm ``fresh-<norm>``), the table also gives the ratio against it
(``retained_same``), which isolates what is kept over the stream. The
interval is a paired percentile bootstrap over seeds: each resample draws seed indices
with replacement and uses the arm's and the oracle's runs of those seeds (same envs,
same permutations), computed with :func:`normrl.analysis.stats.resample_statistics`.
With 3 seeds there are only 10 distinct resamples: read the interval as the spread over
seeds, not as a precise confidence statement.

The gate: the plain agent (arm ``none``) retains at most 0.8 of the oracle's return
over the last ``window`` visits, while the oracle stays flat (its last-``window`` mean
within ±20% of its first-``window`` mean, optionally leaving out leading tasks; RL returns are noisier than supervised
accuracies, hence the wider band than the supervised suite's ±0.02).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from normrl.analysis.plasticity_plots import plot_retained_bars, plot_task_curves
from normrl.analysis.results import DORMANT_TAG, RETURN_TAG, WEIGHT_NORM_TAG, read_scalars, write_keeping_notes
from normrl.analysis.stats import Interval, resample_statistics

__all__ = ["ORACLE", "PLAIN", "WINDOW", "TAIL", "visit_spans", "visit_records", "retained_interval", "RLRun",
           "load_rl_runs", "arm_rows", "gate", "format_table", "write_rl_report"]

ORACLE = "fresh"
PLAIN = "none"
WINDOW = 5
TAIL = 0.25
RECORD_KEYS = ("train_return", "eval_return", "dormant_ratio", "weight_norm")


def visit_spans(eval_steps: Sequence[int]) -> list[tuple[int, int]]:
    """``[(start, end)]`` env-step span of every visit: visit ``k`` covers
    ``(eval_steps[k-1], eval_steps[k]]`` (from 0 for the first)."""
    starts = [0, *eval_steps[:-1]]
    return [(int(a), int(b)) for a, b in zip(starts, eval_steps)]


def _tail_mean(points: list[tuple[int, float]], start: int, end: int, tail: float) -> float:
    lo = end - tail * (end - start)
    vals = [v for step, v in points if lo < step <= end]
    return float(sum(vals) / len(vals)) if vals else math.nan


def _last_in(points: list[tuple[int, float]], start: int, end: int) -> float:
    vals = [v for step, v in points if start < step <= end]
    return float(vals[-1]) if vals else math.nan


def visit_records(continual: dict, scalars: dict[str, list[tuple[int, float]]], tail: float = TAIL) -> list[dict]:
    """One record per visit of a ``continual`` result (``summary.json["continual"]``) from
    the run's TensorBoard ``scalars`` (``{tag: [(step, value)]}``, points sorted by
    step): ``visit``, ``task`` (id), ``task_name``, ``train_return`` (mean over the last
    ``tail`` of the visit), ``eval_return`` (the diagonal entry), ``dormant_ratio`` and
    ``weight_norm`` (last value in the visit); NaN where nothing was logged."""
    if not 0.0 < tail <= 1.0:
        raise ValueError(f"tail must be in (0, 1], got {tail!r}")
    names = continual["task_names"]
    records = []
    for visit, (task, (start, end)) in enumerate(zip(continual["visit_tasks"], visit_spans(continual["eval_steps"]))):
        diagonal = continual["returns"][visit][task]
        records.append({
            "visit": visit, "task": int(task), "task_name": names[task],
            "train_return": _tail_mean(scalars.get(RETURN_TAG, []), start, end, tail),
            "eval_return": math.nan if diagonal is None else float(diagonal),
            "dormant_ratio": _last_in(scalars.get(DORMANT_TAG, []), start, end),
            "weight_norm": _last_in(scalars.get(WEIGHT_NORM_TAG, []), start, end),
        })
    return records


def run_records(run_dir: str | Path, tail: float = TAIL) -> list[dict]:
    """:func:`visit_records` of the train_stream run in ``run_dir`` (its summary.json and
    TensorBoard events)."""
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    scalars = read_scalars(run_dir, (RETURN_TAG, DORMANT_TAG, WEIGHT_NORM_TAG))
    records = visit_records(summary["continual"], scalars, tail)
    # JSON has no NaN: a missing value is written as null (read back as NaN by RLRun.series)
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]


def retained_interval(arm_last: Sequence[float], oracle_last: Sequence[float], *, reps: int = 20_000,
                      confidence: float = 0.95, seed: int = 0) -> Interval:
    """Plasticity retained ``mean(arm_last) / mean(oracle_last)`` with its paired
    percentile bootstrap interval: ``arm_last[i]`` and ``oracle_last[i]`` are the
    last-window means of the same seed; every resample draws seed indices with
    replacement (the same for both) and takes the ratio of the resampled means."""
    a = np.asarray(arm_last, dtype=np.float64)
    o = np.asarray(oracle_last, dtype=np.float64)
    if a.ndim != 1 or a.shape != o.shape or a.size == 0:
        raise ValueError(f"arm_last and oracle_last need the same positive length, got {a.shape} and {o.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be a positive int, got {reps!r}")
    idx = np.random.default_rng(seed).integers(0, a.size, size=(reps, a.size, 1))
    arm_means = resample_statistics(a[:, None], idx, metrics=("mean",))["mean"]
    oracle_means = resample_statistics(o[:, None], idx, metrics=("mean",))["mean"]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = arm_means / oracle_means
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(dist, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return Interval(float(a.mean() / o.mean()), float(low), float(high))


@dataclass
class RLRun:
    """One finished run: seed, directory, summary (with ``tasks``) and config."""

    seed: int
    path: Path
    summary: dict
    config: dict

    def series(self, key: str) -> np.ndarray:
        """Per-visit values of ``key`` (NaN where missing)."""
        return np.array([math.nan if r.get(key) is None else float(r[key]) for r in self.summary["tasks"]], dtype=float)


def load_rl_runs(root: str | Path, problem: str) -> dict[str, list[RLRun]]:
    """``{arm name: [RLRun sorted by seed]}`` for every finished run under
    ``root/problem/<arm dir>/seed<S>/`` (``summary.json`` with ``"finished": true``)."""
    out: dict[str, list[RLRun]] = {}
    for path in sorted((Path(root) / problem).glob("*/seed*/summary.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if summary.get("finished") is not True or "tasks" not in summary:
            continue
        config_path = path.parent / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        arm = summary.get("arm", {}).get("name", path.parent.parent.name)
        out.setdefault(arm, []).append(RLRun(int(summary["config"]["seed"]), path.parent, summary, config))
    for runs in out.values():
        runs.sort(key=lambda r: r.seed)
    return out


def _window(series: np.ndarray, which: str, window: int) -> float:
    part = series[:window] if which == "first" else series[-window:]
    return float(np.nanmean(part)) if np.any(~np.isnan(part)) else math.nan


def _order(runs: dict) -> list[str]:
    return [a for a in (ORACLE, PLAIN) if a in runs] + [a for a in runs if a not in (ORACLE, PLAIN)]


def arm_rows(runs: dict[str, list[RLRun]], *, window: int = WINDOW, reps: int = 20_000) -> list[dict]:
    """One dict per arm (oracle, plain, then the others): seeds, first/last-window
    training and evaluation returns, plasticity retained with its interval (on the
    seeds the arm shares with the oracle), the last visit's dormant ratio and weight
    norm, and the mean wall time per run."""
    def against(rs: list[RLRun], reference: str, key: str) -> Interval | None:
        ref = {r.seed: r for r in runs.get(reference, [])}
        shared = [r for r in rs if r.seed in ref]
        if not shared:
            return None
        return retained_interval([_window(r.series(key), "last", window) for r in shared],
                                 [_window(ref[r.seed].series(key), "last", window) for r in shared], reps=reps)

    rows = []
    for arm in _order(runs):
        rs = runs[arm]
        retained, eval_retained = against(rs, ORACLE, "train_return"), against(rs, ORACLE, "eval_return")
        norm = rs[0].summary.get("arm", {}).get("norm", "none")
        same = f"{ORACLE}-{norm}"
        fresh_arm = bool(rs[0].summary.get("arm", {}).get("fresh"))
        retained_same = against(rs, same, "train_return") if (norm != "none" and not fresh_arm) else None
        rows.append({
            "arm": arm, "seeds": [r.seed for r in rs],
            "first": float(np.mean([_window(r.series("train_return"), "first", window) for r in rs])),
            "last": float(np.mean([_window(r.series("train_return"), "last", window) for r in rs])),
            "eval_last": float(np.mean([_window(r.series("eval_return"), "last", window) for r in rs])),
            "retained": retained, "eval_retained": eval_retained, "retained_same": retained_same,
            "dormant": float(np.nanmean([r.series("dormant_ratio")[-1] for r in rs])),
            "weight_norm": float(np.nanmean([r.series("weight_norm")[-1] for r in rs])),
            "wall_seconds": float(np.mean([r.summary.get("wall_seconds", math.nan) for r in rs])),
        })
    return rows


def gate(runs: dict[str, list[RLRun]], rows: list[dict], *, window: int = WINDOW, skip_first: int = 0) -> dict[str, Any]:
    """The loss-of-plasticity gate (module docstring) as ``{"checks": [(text, passed)],
    "passed": bool}``. ``skip_first`` leading tasks are left out of the oracle's first
    window (task 0 of a permuted stream is the unpermuted game, which a CNN learns
    faster than any permuted one)."""
    by_arm = {r["arm"]: r for r in rows}
    if PLAIN not in by_arm or ORACLE not in runs or by_arm[PLAIN]["retained"] is None:
        return {"checks": [("plain agent and oracle both present", False)], "passed": False}
    ret = by_arm[PLAIN]["retained"].point
    checks = [(f"plain agent loses plasticity: retained {ret:.2f} <= 0.8 (last {window} tasks, training return)",
               ret <= 0.8)]
    oracle = [r.series("train_return") for r in runs[ORACLE]]
    first = float(np.mean([_window(s[skip_first:], "first", window) for s in oracle]))
    last = float(np.mean([_window(s, "last", window) for s in oracle]))
    change = last / first - 1.0 if first else math.inf
    tasks = f"tasks {skip_first}-{skip_first + window - 1}"
    checks.append((f"oracle flat: last-{window} {last:.2f} vs {tasks} {first:.2f} ({100 * change:+.0f}%, within ±20%)",
                   abs(change) <= 0.2))
    return {"checks": checks, "passed": all(ok for _, ok in checks)}


def _fmt_interval(iv: Interval | None) -> str:
    return "—" if iv is None else f"{iv.point:.2f} [{iv.low:.2f}, {iv.high:.2f}]"


def format_table(rows: list[dict], window: int = WINDOW) -> str:
    """The Markdown table of :func:`arm_rows`."""
    lines = [f"| arm | seeds | train return, first {window} | train return, last {window} | "
             f"plasticity retained [95% CI] | vs fresh agent, same norm [95% CI] | eval return, last {window} | "
             "retained (eval) [95% CI] | dormant (last visit) | ‖θ‖ (last visit) | s/run |", "|" + "---|" * 11]
    for r in rows:
        lines.append("| " + " | ".join([
            f"`{r['arm']}`", str(len(r["seeds"])), f"{r['first']:.2f}", f"{r['last']:.2f}", _fmt_interval(r["retained"]),
            _fmt_interval(r.get("retained_same")), f"{r['eval_last']:.2f}", _fmt_interval(r["eval_retained"]),
            f"{r['dormant']:.2f}", f"{r['weight_norm']:.1f}", f"{r['wall_seconds']:.0f}"]) + " |")
    return "\n".join(lines)


def _plot_series(path: Path, runs: dict[str, list[RLRun]], panels: list[tuple[str, str]], title: str) -> Path:
    return plot_task_curves(path, _order(runs), lambda arm, key: np.stack([r.series(key) for r in runs[arm]]), panels, title,
                            oracle=ORACLE, plain=PLAIN, xlabel="task (visit)", marker=".")


def _plot_retained(path: Path, rows: list[dict], title: str) -> Path:
    return plot_retained_bars(path, rows, title, is_oracle=lambda arm: arm.startswith(ORACLE), plain=PLAIN,
                              ylabel="plasticity retained (vs fresh agent)", threshold=0.8)


def write_rl_report(root: str | Path, problem: str, out_md: str | Path, *, title: str, setup: str = "",
                    window: int = WINDOW, reps: int = 20_000, skip_first: int = 0) -> dict[str, Any]:
    """Read the finished runs of ``problem`` under ``root`` and write ``out_md``: the setup
    text, the table, the gate and three PNGs beside it
    (``<md stem>_{returns,retained,plasticity}.png``); ``skip_first`` as in :func:`gate`. Text after
    :data:`~normrl.analysis.results.NOTES_MARKER` in an existing ``out_md`` is kept.
    Returns ``{"rows", "gate", "plots", "runs"}``."""
    runs = load_rl_runs(root, problem)
    if not runs:
        raise FileNotFoundError(f"no finished run of {problem!r} under {root}")
    out_md = Path(out_md)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    rows = arm_rows(runs, window=window, reps=reps)
    g = gate(runs, rows, window=window, skip_first=skip_first)
    stem = out_md.stem
    plots = [
        _plot_series(out_md.parent / f"{stem}_returns.png", runs,
                     [("train_return", f"training return, last {int(100 * TAIL)}% of the visit"),
                      ("eval_return", "greedy evaluation return after the visit")],
                     f"{problem}: return per task, mean over seeds (band: min-max)"),
        _plot_retained(out_md.parent / f"{stem}_retained.png", rows,
                       f"{problem}: plasticity retained, last {window} tasks (95% paired bootstrap over seeds)"),
        _plot_series(out_md.parent / f"{stem}_plasticity.png", runs,
                     [("dormant_ratio", "dormant-unit ratio (τ=0.025) at the visit's end"),
                      ("weight_norm", "parameter norm ‖θ‖ at the visit's end")],
                     f"{problem}: plasticity metrics per task (PlasticityMonitor)"),
    ]
    total = sum(r.summary.get("wall_seconds", 0.0) for rs in runs.values() for r in rs)
    listing = "; ".join(f"`{arm}`: seeds {', '.join(str(r.seed) for r in runs[arm])}" for arm in _order(runs))
    body = [f"# {title}", ""]
    if setup:
        body += [setup, ""]
    body += [f"Runs: {listing}. Summed wall time of the runs: {total / 60:.1f} min (each run's own clock; how many ran at once is the command's --jobs).", "",
             f"Plasticity retained = the arm's mean training return over the last {window} tasks / the fresh "
             f"plain agent's over the same tasks (means over seeds, then the ratio); *vs fresh agent, same norm*: "
             f"the same against a fresh agent with the arm's norm (arm `fresh-<norm>`), when it was run; the "
             f"*eval* column is the first ratio with the greedy evaluation return after each visit. Intervals: "
             f"paired percentile bootstrap over seeds (20,000 resamples).", "", format_table(rows, window), "",
             f"Gate ({'PASSED' if g['passed'] else 'NOT PASSED'}):", ""]
    body += [f"- [{'x' if ok else ' '}] {text}" for text, ok in g["checks"]]
    body += [""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    write_keeping_notes(out_md, "\n".join(body) + "\n")
    return {"rows": rows, "gate": g, "plots": plots, "runs": {a: [r.seed for r in rs] for a, rs in runs.items()}}
