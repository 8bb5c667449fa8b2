"""The plasticity suite's report: plasticity retained per arm against the
fresh-initialization oracle, a Markdown table, the loss-of-plasticity gate, and PNG
plots, all regenerated from the run directories alone (``summary.json`` and
``config.json`` under ``<root>/<problem>/<arm>/seed<S>/``).

Headline number per arm, **plasticity retained**:

* classification: the arm's mean end-of-task training accuracy over the last
  ``last`` tasks (5) divided by the oracle's mean over the same tasks;
* regression: the error ratio, the oracle's mean end-of-task squared error over the
  last tasks divided by the arm's (so 1 means "learns the late tasks as well as a
  fresh network" in both cases, below 1 means worse).

Means are over seeds first, then the ratio is taken (a ratio of means). The 95%
interval is a paired percentile bootstrap over seeds: each resample draws seeds with
replacement and uses the arm's and the oracle's runs of the same seeds (they saw the
same data). With 3 seeds there are only 10 distinct resamples; read the interval as
the spread over seeds, not as a precise confidence statement.

The gate (the five-minute experiment of the project's research notes): the plain
network loses plasticity (its last-5 mean ≤ 0.8 × its first-5 mean) while the oracle
stays flat (within ±0.02 accuracy). Regression (bit-flipping): a task's difficulty
depends on its flip state, so every learner's raw error moves with the stream; there
the plain network's error *relative to the oracle's on the same tasks* must grow by ≥
25% from the first 5 tasks to the last 5 (the same 0.8 on the oracle/plain scale),
and the oracle counts as flat within ±25%. Also printed, when the arms are present:
L2-init and ReDo beat the plain network by more than 10 points on the last 5 tasks.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from normrl.analysis.plasticity_plots import plot_retained_bars, plot_task_curves
from normrl.analysis.results import write_keeping_notes
from normrl.analysis.stats import Interval

__all__ = [
    "load_suite",
    "headline_key",
    "window_mean",
    "plasticity_retained",
    "gate",
    "arm_rows",
    "format_markdown_table",
    "write_plasticity_report",
    "RunData",
]

ORACLE = "fresh"
PLAIN = "none"
WINDOW = 5
#: report order of the built-in problems (others follow alphabetically)
PROBLEM_ORDER = ("random-labels", "permuted-inputs", "bit-flipping")


@dataclass
class RunData:
    """One finished run: its seed, directory, summary and config."""

    seed: int
    path: Path
    summary: dict
    config: dict

    def series(self, key: str) -> np.ndarray:
        """Per-task values of ``key`` (NaN where missing)."""
        return np.array([np.nan if r.get(key) is None else float(r[key]) for r in self.summary["tasks"]], dtype=float)


def load_suite(root: str | Path) -> dict[str, dict[str, list[RunData]]]:
    """``{problem: {arm name: [RunData sorted by seed]}}`` for every finished run under
    ``root`` (``<problem>/<arm dir>/seed<S>/summary.json`` with ``"finished": true``;
    the arm's name is read from the summary)."""
    out: dict[str, dict[str, list[RunData]]] = {}
    root = Path(root)
    for summary_path in sorted(root.glob("*/*/seed*/summary.json")):
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            continue
        if summary.get("finished") is not True:
            continue
        run_dir = summary_path.parent
        config_path = run_dir / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        problem = run_dir.parent.parent.name
        arm = summary.get("arm", {}).get("name", run_dir.parent.name)
        seed = int(summary.get("config", {}).get("seed", run_dir.name[len("seed"):]))
        out.setdefault(problem, {}).setdefault(arm, []).append(RunData(seed, run_dir, summary, config))
    for arms in out.values():
        for runs in arms.values():
            runs.sort(key=lambda r: r.seed)
    order = {name: i for i, name in enumerate(PROBLEM_ORDER)}
    return dict(sorted(out.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def headline_key(kind: str) -> tuple[str, bool]:
    """``(per-task metric, higher is better)``: end-of-task training accuracy for
    classification, end-of-task squared error for regression."""
    if kind == "classification":
        return "train_accuracy", True
    if kind == "regression":
        return "train_loss", False
    raise ValueError(f"kind must be 'classification' or 'regression', got {kind!r}")


def window_mean(values: Sequence[float] | np.ndarray, which: str = "last", size: int = WINDOW) -> float:
    """Mean of the first or last ``size`` entries (all of them when there are fewer)."""
    a = np.asarray(values, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"expected a non-empty 1-D series, got shape {a.shape}")
    if which not in ("first", "last"):
        raise ValueError(f"which must be 'first' or 'last', got {which!r}")
    part = a[:size] if which == "first" else a[-size:]
    return float(np.mean(part))


def plasticity_retained(arm: np.ndarray, oracle: np.ndarray, *, higher_is_better: bool = True, last: int = WINDOW,
                        reps: int = 20_000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Plasticity retained with its paired bootstrap interval over seeds.

    Args:
        arm, oracle: per-task headline values, shape ``(seeds, tasks)``, row ``i`` of both
            from the same seed (same data).
        higher_is_better: accuracy (ratio arm/oracle) or error (ratio oracle/arm).
        last: tasks in the window [5].
        reps, confidence, seed: bootstrap resamples, interval coverage, resampling seed.

    Point estimate: ``mean_seeds(last-window mean of arm) / mean_seeds(... of oracle)``
    (inverted for errors). Interval: percentile bootstrap, resampling seed indices with
    replacement, the same indices for arm and oracle.
    """
    a = np.atleast_2d(np.asarray(arm, dtype=float))
    o = np.atleast_2d(np.asarray(oracle, dtype=float))
    if a.shape[0] != o.shape[0] or a.shape[0] == 0:
        raise ValueError(f"arm and oracle need the same positive number of seeds (rows), got {a.shape} and {o.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    a_last = np.array([window_mean(row, "last", last) for row in a])
    o_last = np.array([window_mean(row, "last", last) for row in o])

    def ratio(x, y):
        return x / y if higher_is_better else y / x

    point = float(ratio(a_last.mean(), o_last.mean()))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a_last.size, size=(reps, a_last.size))
    dist = ratio(a_last[idx].mean(axis=1), o_last[idx].mean(axis=1))
    alpha = (1 - confidence) / 2
    low, high = np.percentile(dist, [100 * alpha, 100 * (1 - alpha)])
    return Interval(point, float(low), float(high))


def _aligned(runs: dict[str, list[RunData]], arm: str, key: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The arm's and the oracle's series on the seeds both have."""
    oracle = {r.seed: r for r in runs.get(ORACLE, [])}
    mine = {r.seed: r for r in runs.get(arm, [])}
    seeds = sorted(set(oracle) & set(mine))
    if not seeds:
        return np.zeros((0, 0)), np.zeros((0, 0)), []
    return (np.stack([mine[s].series(key) for s in seeds]), np.stack([oracle[s].series(key) for s in seeds]), seeds)


def gate(runs: dict[str, list[RunData]], kind: str, *, window: int = WINDOW) -> dict[str, Any]:
    """The loss-of-plasticity gate (module docstring) as ``{"checks": [(text, passed or
    None when not applicable)], "passed": bool}``."""
    key, higher = headline_key(kind)
    checks: list[tuple[str, Optional[bool]]] = []

    def means(arm: str) -> Optional[tuple[float, float]]:
        rs = runs.get(arm, [])
        if not rs:
            return None
        first = float(np.mean([window_mean(r.series(key), "first", window) for r in rs]))
        last = float(np.mean([window_mean(r.series(key), "last", window) for r in rs]))
        return first, last

    plain, oracle = means(PLAIN), means(ORACLE)
    if plain is None or oracle is None:
        return {"checks": [("plain network and oracle both present", False)], "passed": False}
    if higher:
        ok = plain[1] <= 0.8 * plain[0]
        checks.append((f"plain network loses plasticity: last-{window} {plain[1]:.3f} <= 0.8 x first-{window} "
                       f"{plain[0]:.3f} = {0.8 * plain[0]:.3f}", ok))
        ok = abs(oracle[1] - oracle[0]) <= 0.02
        checks.append((f"oracle flat: |last-{window} {oracle[1]:.3f} - first-{window} {oracle[0]:.3f}| = "
                       f"{abs(oracle[1] - oracle[0]):.3f} <= 0.02", ok))
    else:
        # A task's difficulty depends on its flip state, so the raw error moves with the
        # stream for every learner: compare the plain network with the oracle on the
        # same tasks (seed-wise means of the error ratio plain / oracle).
        def ratio(which: str) -> float:
            a, o, _ = _aligned(runs, PLAIN, key)
            return float(np.mean([window_mean(x, which, window) for x in a]) /
                         np.mean([window_mean(x, which, window) for x in o]))
        first, last = ratio("first"), ratio("last")
        checks.append((f"plain network loses plasticity: its error relative to the oracle's on the same tasks, "
                       f"last-{window} {last:.3f} >= 1.25 x first-{window} {first:.3f} = {1.25 * first:.3f}", last >= 1.25 * first))
        rel = abs(oracle[1] / oracle[0] - 1)
        checks.append((f"oracle flat: last-{window} error {oracle[1]:.4g} within 25% of first-{window} {oracle[0]:.4g} "
                       f"({100 * rel:.1f}%)", rel <= 0.25))
    passed = all(c for _, c in checks)
    if higher:
        for prefix in ("none+l2_init", "none+redo"):
            arm = next((a for a in runs if a == prefix or a.startswith(prefix + ":")), None)
            m = means(arm) if arm else None
            if m is not None:
                checks.append((f"{arm} beats the plain network by > 10 points on the last {window}: "
                               f"{m[1]:.3f} vs {plain[1]:.3f}", m[1] - plain[1] > 0.10))
    return {"checks": checks, "passed": passed}


def _final(rs: list[RunData], key: str) -> float:
    vals = [r.series(key)[-1] for r in rs]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def arm_rows(runs: dict[str, list[RunData]], kind: str, *, window: int = WINDOW, reps: int = 20_000) -> list[dict]:
    """One dict per arm (oracle and plain first): seeds, first/last window means of the
    headline metric, plasticity retained with its interval, last-window online
    accuracy (or loss), the final dormant ratio, srank, weight norms and effective LR,
    and the mean wall/CPU seconds per run."""
    key, higher = headline_key(kind)
    online = "online_accuracy" if higher else "online_loss"
    order = [a for a in (ORACLE, PLAIN) if a in runs] + [a for a in runs if a not in (ORACLE, PLAIN)]
    rows = []
    for arm in order:
        rs = runs[arm]
        a, o, seeds = _aligned(runs, arm, key)
        retained = plasticity_retained(a, o, higher_is_better=higher, last=window, reps=reps) if seeds else None
        rows.append({
            "arm": arm,
            "seeds": [r.seed for r in rs],
            "first": float(np.mean([window_mean(r.series(key), "first", window) for r in rs])),
            "last": float(np.mean([window_mean(r.series(key), "last", window) for r in rs])),
            "retained": retained,
            "online_last": float(np.mean([window_mean(r.series(online), "last", window) for r in rs])),
            "dormant": _final(rs, "dormant_ratio"),
            "srank": _final(rs, "srank"),
            "weight_norm": _final(rs, "weight_norm"),
            "output_weight_norm": _final(rs, "output_weight_norm"),
            "effective_lr": _final(rs, "effective_lr"),
            "train_seconds": float(np.mean([r.summary.get("train_seconds", float("nan")) for r in rs])),
            "cpu_seconds": float(np.mean([r.summary.get("cpu_seconds", float("nan")) for r in rs])),
        })
    return rows


def format_markdown_table(rows: list[dict], kind: str, window: int = WINDOW) -> str:
    """The Markdown table of :func:`arm_rows`."""
    what = "acc." if kind == "classification" else "error"
    online = "online acc." if kind == "classification" else "online error"
    head = (f"| arm | seeds | first-{window} {what} | last-{window} {what} | plasticity retained [95% CI] | "
            f"last-{window} {online} | dormant | srank | ‖W‖ | ‖W_out‖ | eff. LR | s/run (CPU s) |")
    lines = [head, "|" + "---|" * 12]
    fmt = (lambda v: f"{v:.3f}") if kind == "classification" else (lambda v: f"{v:.4g}")
    for r in rows:
        ret = r["retained"]
        ret_text = "—" if ret is None else f"{ret.point:.2f} [{ret.low:.2f}, {ret.high:.2f}]"
        lines.append("| " + " | ".join([
            f"`{r['arm']}`", str(len(r["seeds"])), fmt(r["first"]), fmt(r["last"]), ret_text, fmt(r["online_last"]),
            f"{r['dormant']:.2f}", f"{r['srank']:.0f}", f"{r['weight_norm']:.1f}", f"{r['output_weight_norm']:.1f}",
            f"{r['effective_lr']:.2g}", f"{r['train_seconds']:.0f} ({r['cpu_seconds']:.0f})",
        ]) + " |")
    return "\n".join(lines)


def _plot(path: Path, runs: dict[str, list[RunData]], panels: list[tuple[str, str]], title: str) -> Path:
    order = [a for a in (ORACLE, PLAIN) if a in runs] + [a for a in runs if a not in (ORACLE, PLAIN)]
    return plot_task_curves(path, order, lambda arm, key: np.stack([r.series(key) for r in runs[arm]]), panels, title,
                            oracle=ORACLE, plain=PLAIN)


def _plot_retained(path: Path, rows: list[dict], title: str) -> Path:
    return plot_retained_bars(path, rows, title, is_oracle=lambda arm: arm == ORACLE, plain=PLAIN,
                              ylabel="plasticity retained (vs fresh)")


def _setup_text(runs: dict[str, list[RunData]]) -> str:
    ref = (runs.get(ORACLE) or next(iter(runs.values())))[0].config
    resolved = ref.get("resolved", {})
    problem_kwargs = {k: v for k, v in ref.get("problem_kwargs", {}).items() if k != "seed"}
    learner = ", ".join(f"{k}={resolved[k]}" for k in ("hidden", "activation", "optimizer", "lr", "batch_size", "epochs", "shuffle")
                        if k in resolved)
    protocol = ref.get("protocol", {}).get("source", "")
    return (f"Problem options over its defaults: `{problem_kwargs}`. Learner (every arm, unless the arm says "
            f"otherwise): {learner}. Paper protocol: {protocol}. Source: {ref.get('paper', '')}.")


def write_plasticity_report(root: str | Path, out_md: str | Path, *, title: str = "Plasticity suite", intro: str = "",
                            window: int = WINDOW, reps: int = 20_000) -> dict[str, Any]:
    """Read every finished run under ``root`` and write ``out_md`` with, per problem, the
    setup, the table, the gate and three PNGs beside it
    (``<md stem>_<problem>_{tasks,retained,plasticity}.png``). Text after
    :data:`~normrl.analysis.results.NOTES_MARKER` in an existing ``out_md`` is kept.
    Returns ``{problem: {"rows", "gate", "plots", "kind"}}``."""
    out_md = Path(out_md)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    suite = load_suite(root)
    if not suite:
        raise FileNotFoundError(f"no finished plasticity run under {root}")
    body = [f"# {title}", ""]
    if intro:
        body += [intro, ""]
    result: dict[str, Any] = {}
    for problem, runs in suite.items():
        kind = next(iter(runs.values()))[0].summary.get("kind", "classification")
        key, higher = headline_key(kind)
        rows = arm_rows(runs, kind, window=window, reps=reps)
        g = gate(runs, kind, window=window)
        stem = f"{out_md.stem}_{problem}"
        label = "end-of-task training accuracy" if higher else "end-of-task squared error"
        plots = [
            _plot(out_md.parent / f"{stem}_tasks.png", runs, [(key, label), ("online_accuracy" if higher else "online_loss",
                                                                             "online accuracy" if higher else "online squared error")],
                  f"{problem}: per task, mean over seeds (band: min-max)"),
            _plot_retained(out_md.parent / f"{stem}_retained.png", rows,
                           f"{problem}: plasticity retained, last {window} tasks (95% bootstrap over seeds)"),
            _plot(out_md.parent / f"{stem}_plasticity.png", runs,
                  [("dormant_ratio", "dormant ratio (tau=0.025)"), ("weight_norm", "weight norm ||W_all||"),
                   ("output_weight_norm", "output layer ||W_out||")],
                  f"{problem}: plasticity metrics at each task end (probe batch)"),
        ]
        total_wall = sum(r.summary.get("train_seconds", 0.0) for rs in runs.values() for r in rs)
        total_cpu = sum(r.summary.get("cpu_seconds", 0.0) for rs in runs.values() for r in rs)
        ratio_text = ("arm accuracy / oracle accuracy" if higher else "oracle error / arm error (regression: the error ratio)")
        body += [f"## {problem}", "", _setup_text(runs), "",
                 f"Plasticity retained = {ratio_text}, means over the last {window} tasks and the seeds; "
                 "interval: paired percentile bootstrap over seeds. Final-task probe metrics are means over seeds.",
                 "", format_markdown_table(rows, kind, window), "",
                 f"Runs: {sum(len(rs) for rs in runs.values())}; summed training time {total_wall:.0f} s wall, "
                 f"{total_cpu:.0f} s CPU.", "",
                 f"Gate ({'PASSED' if g['passed'] else 'NOT PASSED'}):", ""]
        body += [f"- [{'x' if ok else ' '}] {text}" for text, ok in g["checks"]]
        body += [""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
        result[problem] = {"rows": rows, "gate": g, "plots": plots, "kind": kind}
    write_keeping_notes(out_md, "\n".join(body) + "\n")
    return result
