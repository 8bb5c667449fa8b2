"""Curves from TensorBoard logs: read scalar series back from run directories and plot
them over env steps, mean over seeds with a band, for the sequential-comparison report
(:mod:`normrl.analysis.results`) and ``normrl report`` (:mod:`normrl.analysis.report`).

A band is the spread over seeds of each run's mean in a step bin: ``plot_curves`` shades
mean ± std (population std over the seeds with a point in that bin).
"""
from __future__ import annotations

from pathlib import Path


def read_scalars(run_dir: str | Path, tags: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of ``tags`` from the TensorBoard event files in
    ``run_dir`` (all events, sorted by step; missing tags give empty lists)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    have = set(acc.Tags().get("scalars", []))
    return {t: sorted((e.step, e.value) for e in acc.Scalars(t)) if t in have else [] for t in tags}


def _binned(series: list[list[tuple[int, float]]], edges: list[float]):
    """Per run, the mean value in each bin of ``edges``; then mean and std over runs."""
    import numpy as np

    per_run = []
    for points in series:
        row = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            vals = [v for s, v in points if lo < s <= hi]
            row.append(sum(vals) / len(vals) if vals else np.nan)
        per_run.append(row)
    import warnings

    arr = np.array(per_run, dtype=float)
    with warnings.catch_warnings():  # an all-NaN bin is expected (no point logged there)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(arr, axis=0), np.nanstd(arr, axis=0)


def plot_curves(curves: dict[str, list[list[tuple[int, float]]]], path: str | Path, *, title: str, ylabel: str,
                total_steps: int, switch_steps: list[int], bins: int = 50,
                segment_labels: list[str] | None = None) -> Path:
    """Save a PNG of ``{method: [per-seed (step, value) series]}``: mean over seeds
    in ``bins`` step bins, ± std shaded, task switches as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    edges = list(np.linspace(0, total_steps, bins + 1))
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for method, series in curves.items():
        if not any(series):
            continue
        m, sd = _binned(series, edges)
        keep = ~np.isnan(m)  # bins without a logged point
        x = np.asarray(centers)[keep]
        line, = ax.plot(x, m[keep], label=method, marker=".", markersize=3)
        ax.fill_between(x, (m - sd)[keep], (m + sd)[keep], color=line.get_color(), alpha=0.2)
    for s in switch_steps:
        ax.axvline(s, color="grey", linestyle=":", linewidth=0.8)
    if segment_labels:
        bounds = [0, *switch_steps, total_steps]
        for label, lo, hi in zip(segment_labels, bounds[:-1], bounds[1:]):
            ax.text((lo + hi) / 2, 1.0, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, total_steps)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title, pad=14 if segment_labels else 6)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
