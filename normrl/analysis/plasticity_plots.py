"""The two figures every plasticity report draws: per-task curves of each arm (mean over
seeds, min-max band) against the oracle and the plain network, and the plasticity
retained per arm as bars with their intervals. Used by the supervised suite's report
(:mod:`normrl.analysis.plasticity_report`) and the continual-RL one
(:mod:`normrl.analysis.plasticity_rl_report`)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_task_curves(path: Path, arms: Sequence[str], series_of: Callable[[str, str], np.ndarray],
                     panels: Sequence[tuple[str, str]], title: str, *, oracle: str, plain: str,
                     xlabel: str = "task", marker: str | None = None) -> Path:
    """One panel per ``(key, label)``: for each arm in ``arms`` (drawn in that order),
    ``series_of(arm, key)`` (seeds × tasks) as its mean over seeds with a min-max band;
    the oracle black, the plain network grey dashed; arms whose series is all NaN are
    left out. Writes ``path`` (PNG) and returns it."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 3.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for arm in arms:
            series = series_of(arm, key)
            if np.all(np.isnan(series)):
                continue
            x = np.arange(series.shape[1])
            style = ({"color": "black", "linewidth": 2.2} if arm == oracle else
                     {"color": "grey", "linewidth": 2.0, "linestyle": "--"} if arm == plain else {})
            line, = ax.plot(x, np.nanmean(series, axis=0), marker=marker, label=arm, **style)
            if series.shape[0] > 1:
                ax.fill_between(x, np.nanmin(series, axis=0), np.nanmax(series, axis=0), color=line.get_color(), alpha=0.12)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_retained_bars(path: Path, rows: Sequence[dict], title: str, *, is_oracle: Callable[[str], bool], plain: str,
                       ylabel: str, threshold: float | None = None) -> Path:
    """Bars of ``row["retained"]`` (an interval with ``point``/``low``/``high``) per
    ``row["arm"]``, rows without one left out; a dotted line at 1 (the oracle) and, when
    given, a red one at ``threshold`` (the loss-of-plasticity gate)."""
    plt = _pyplot()
    rows = [r for r in rows if r["retained"] is not None]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 3.6))
    x = np.arange(len(rows))
    pts = np.array([r["retained"].point for r in rows])
    err = np.array([[max(0.0, r["retained"].point - r["retained"].low) for r in rows],
                    [max(0.0, r["retained"].high - r["retained"].point) for r in rows]])
    colors = ["black" if is_oracle(r["arm"]) else "grey" if r["arm"] == plain else "tab:blue" for r in rows]
    ax.bar(x, pts, yerr=err, capsize=3, color=colors)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", linewidth=0.8, linestyle=":")
    ax.set_xticks(x)
    ax.set_xticklabels([r["arm"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
