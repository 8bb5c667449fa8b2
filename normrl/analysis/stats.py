"""Aggregate scores over runs and tasks with stratified-bootstrap confidence intervals,
as in Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (arXiv 2108.13264) and its ``rliable`` package (version 1.2.0 checked).

Implemented variants, each matching rliable's definition:

* interquartile mean (IQM): the 25% trimmed mean of all runs x tasks scores pooled,
  trimming ``int(0.25 * n)`` scores from each end of the sorted ``n`` scores
  (``scipy.stats.trim_mean(scores, 0.25, axis=None)``);
* mean and median of the per-task mean scores; optimality gap
  ``gamma - mean(min(score, gamma))`` over all pooled scores;
* probability of improvement ``P(X > Y)``: per task the Mann-Whitney U statistic over
  ``n_x * n_y`` (ties count one half), averaged over tasks;
* stratified bootstrap: each resample draws, independently for every task (stratum),
  as many runs as that task has, with replacement, from that task's runs (rliable's
  default ``task_bootstrap=False``); the probability of improvement resamples X and Y
  independently. Intervals are percentile intervals by default (rliable's
  ``method="percentile"``, numpy's linear percentile, 95%, 50,000 resamples); the
  ``"basic"`` interval is also offered. rliable's BCa is not.

Differences from rliable: resamples are drawn from a seeded ``numpy.random.Generator``
(rliable draws them from numpy's global random state; its ``random_state`` argument
does not reach the resampling), all resamples of a chunk at once (no Python loop per
resample), and tasks may have different numbers of runs (a missing seed): the mean and
median then weight tasks equally, while IQM and optimality gap pool all runs, so a task
with more runs weighs more in them. numpy is the only dependency; rliable itself needs
``arch``, which (arch 7.2) fails to import with pandas 3.

Scores are a 2-D numpy array ``(num_runs, num_tasks)`` (rliable's layout), a list of
per-task 1-D arrays of run scores (any other sequence is read this way too), or a
mapping ``task -> 1-D array`` of run scores. To aggregate
across tasks of different scales normalize them first (:func:`normalize_scores`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

METRICS = ("iqm", "mean", "median", "optimality_gap")
INTERVAL_METHODS = ("percentile", "basic")
DEFAULT_REPS = 50_000
"""rliable's default number of bootstrap resamples (``get_interval_estimates``)."""
_CHUNK_ELEMENTS = 1 << 22  # resampled scores per vectorized chunk (32 MiB of float64)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval ``[low, high]``."""

    point: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"point": self.point, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class BootstrapResult:
    """Output of :func:`bootstrap_intervals`.

    Attributes:
        aggregate: metric name -> interval of the aggregate over all tasks.
        per_task: task key -> mean over that task's runs with its interval (the same
            resamples, so each is a plain bootstrap of that task's runs).
        reps, confidence, method: the bootstrap's settings.
    """

    aggregate: dict[str, Interval]
    per_task: dict[Any, Interval]
    reps: int
    confidence: float
    method: str


def _as_tasks(scores) -> tuple[list, list[np.ndarray]]:
    """(task keys, per-task float arrays of run scores) from any accepted layout."""
    if isinstance(scores, Mapping):
        keys = list(scores)
        tasks = [np.asarray(scores[k], dtype=np.float64) for k in keys]
    elif isinstance(scores, np.ndarray):
        array = np.asarray(scores, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError("scores must be a 2-D array (num_runs, num_tasks), a sequence of "
                             f"per-task 1-D arrays, or a mapping task -> 1-D array; got shape {array.shape}")
        keys = list(range(array.shape[1]))
        tasks = [array[:, m] for m in keys]
    else:
        tasks = [np.asarray(t, dtype=np.float64) for t in scores]
        keys = list(range(len(tasks)))
    if not tasks:
        raise ValueError("scores hold no task")
    for key, t in zip(keys, tasks):
        if t.ndim != 1 or t.size == 0:
            raise ValueError(f"task {key!r}: run scores must be a non-empty 1-D array, got shape {t.shape}")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"task {key!r}: scores must be finite, got {t}")
    return keys, tasks


def _trimmed_mean(a: np.ndarray, proportion: float = 0.25) -> np.ndarray:
    """Mean over the last axis after dropping ``int(proportion * n)`` values from each end
    of the sorted values (the same cut as ``scipy.stats.trim_mean``)."""
    n = a.shape[-1]
    low = int(proportion * n)
    high = n - low
    part = np.partition(a, (low, high - 1), axis=-1) if high - low < n else a
    return part[..., low:high].mean(axis=-1)


def interquartile_mean(scores) -> float:
    """IQM: the 25% trimmed mean of all runs x tasks scores pooled (rliable's
    ``aggregate_iqm``; arXiv 2108.13264)."""
    _, tasks = _as_tasks(scores)
    return float(_trimmed_mean(np.concatenate(tasks)))


def aggregate_mean(scores) -> float:
    """Mean over tasks of each task's mean score (rliable's ``aggregate_mean``)."""
    _, tasks = _as_tasks(scores)
    return float(np.mean([t.mean() for t in tasks]))


def aggregate_median(scores) -> float:
    """Median over tasks of each task's mean score (rliable's ``aggregate_median``)."""
    _, tasks = _as_tasks(scores)
    return float(np.median([t.mean() for t in tasks]))


def optimality_gap(scores, gamma: float = 1.0) -> float:
    """``gamma - mean(min(score, gamma))`` over all pooled scores: how far the runs fall
    short of the target ``gamma`` [1.0, a normalized score] (rliable's
    ``aggregate_optimality_gap``)."""
    _, tasks = _as_tasks(scores)
    return float(gamma - np.minimum(np.concatenate(tasks), gamma).mean())


def normalize_scores(scores, low, high):
    """``(score - low) / (high - low)`` per task, e.g. human-normalized Atari scores
    (low = random policy, high = human). ``low``/``high`` are scalars, per-task
    sequences, or mappings with the keys of a mapping ``scores``; the result has the
    layout of ``scores`` (an array for an array)."""
    keys, tasks = _as_tasks(scores)

    def per_task(bound, name):
        if isinstance(bound, Mapping):
            missing = [k for k in keys if k not in bound]
            if missing:
                raise ValueError(f"{name} lacks tasks {missing}")
            return [float(bound[k]) for k in keys]
        values = np.broadcast_to(np.asarray(bound, dtype=np.float64), (len(keys),))
        return [float(v) for v in values]

    lows, highs = per_task(low, "low"), per_task(high, "high")
    for key, lo, hi in zip(keys, lows, highs):
        if hi == lo:
            raise ValueError(f"task {key!r}: high equals low ({hi}); cannot normalize")
    out = [(t - lo) / (hi - lo) for t, lo, hi in zip(tasks, lows, highs)]
    if isinstance(scores, Mapping):
        return dict(zip(keys, out))
    if isinstance(scores, np.ndarray):
        return np.stack(out, axis=1)
    return out


def _check_metrics(metrics) -> tuple[str, ...]:
    metrics = tuple(metrics)
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise ValueError(f"unknown metrics {bad or metrics}; valid: {', '.join(METRICS)}")
    return metrics


def _check_settings(reps: int, confidence: float, method: str) -> None:
    if int(reps) != reps or reps < 1:
        raise ValueError(f"reps must be a positive integer, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"unknown interval method {method!r}; valid: {', '.join(INTERVAL_METHODS)}")


def _statistics(pooled: np.ndarray, task_means: np.ndarray, metrics, gamma: float) -> dict:
    """Each metric for each resample (row) from the pooled scores (rows x all runs) and
    the per-task means (rows x tasks)."""
    out = {}
    for m in metrics:
        if m == "iqm":
            out[m] = _trimmed_mean(pooled)
        elif m == "mean":
            out[m] = task_means.mean(axis=1)
        elif m == "median":
            out[m] = np.median(task_means, axis=1)
        else:
            out[m] = gamma - np.minimum(pooled, gamma).mean(axis=1)
    return out


def _interval(point: float, distribution: np.ndarray, confidence: float, method: str) -> Interval:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(distribution, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    if method == "basic":
        low, high = 2.0 * point - high, 2.0 * point - low
    return Interval(float(point), float(low), float(high))


def _groups(tasks: list[np.ndarray]):
    """Tasks grouped by run count: (runs, task positions, data (runs, tasks in group))."""
    by_runs: dict[int, list[int]] = {}
    for m, t in enumerate(tasks):
        by_runs.setdefault(t.size, []).append(m)
    return [(n, np.array(pos), np.stack([tasks[m] for m in pos], axis=1)) for n, pos in by_runs.items()]


def resample_statistics(scores, indices: np.ndarray, *, metrics: Sequence[str] = METRICS,
                        gamma: float = 1.0) -> dict[str, np.ndarray]:
    """The aggregate metrics of given stratified resamples of a ``(num_runs, num_tasks)``
    score array: ``indices[r, i, m]`` is the run that fills slot ``i`` of task ``m`` in
    resample ``r`` (shape ``(reps, num_runs, num_tasks)``), the layout of rliable's
    ``StratifiedBootstrap`` indices. Returns metric -> array of ``reps`` values. Use it
    to reproduce another tool's resamples; :func:`bootstrap_intervals` draws its own."""
    metrics = _check_metrics(metrics)
    data = np.asarray(scores, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (num_runs, num_tasks), got shape {data.shape}")
    indices = np.asarray(indices)
    if indices.ndim != 3 or indices.shape[1:] != data.shape:
        raise ValueError(f"indices must have shape (reps, {data.shape[0]}, {data.shape[1]}), got {indices.shape}")
    if indices.min() < 0 or indices.max() >= data.shape[0]:
        raise ValueError(f"indices must lie in [0, {data.shape[0]})")
    values = data[indices, np.arange(data.shape[1])]
    return _statistics(values.reshape(len(values), -1), values.mean(axis=1), metrics, gamma)


def bootstrap_intervals(scores, *, metrics: Sequence[str] = METRICS, reps: int = DEFAULT_REPS,
                        confidence: float = 0.95, method: str = "percentile", gamma: float = 1.0,
                        seed: int | np.random.Generator = 0) -> BootstrapResult:
    """Point estimates and stratified-bootstrap confidence intervals of the aggregate
    ``metrics`` (any of ``iqm``, ``mean``, ``median``, ``optimality_gap``) and of each
    task's mean score (arXiv 2108.13264; rliable's ``get_interval_estimates`` with its
    defaults: 50,000 resamples, 95% percentile intervals, runs resampled within tasks).

    Args:
        scores: ``(num_runs, num_tasks)`` array, sequence of per-task 1-D arrays, or
            mapping task -> 1-D array (then ``per_task`` has its keys).
        reps: bootstrap resamples [50,000].
        confidence: interval coverage [0.95].
        method: ``"percentile"`` [default] or ``"basic"``.
        gamma: optimality-gap threshold [1.0].
        seed: an int or a ``numpy.random.Generator`` [0]; the same seed and inputs give
            the same intervals.
    """
    metrics = _check_metrics(metrics)
    _check_settings(reps, confidence, method)
    keys, tasks = _as_tasks(scores)
    rng = np.random.default_rng(seed)
    groups = _groups(tasks)
    total_runs = sum(t.size for t in tasks)
    chunk = max(1, min(reps, _CHUNK_ELEMENTS // total_runs))
    dists = {m: np.empty(reps) for m in metrics}
    task_means = np.empty((reps, len(tasks)))
    for start in range(0, reps, chunk):
        rows = min(chunk, reps - start)
        pooled = []
        for n, pos, data in groups:
            picks = rng.integers(0, n, size=(rows, n, len(pos)))
            values = data[picks, np.arange(len(pos))]
            pooled.append(values.reshape(rows, -1))
            task_means[start:start + rows, pos] = values.mean(axis=1)
        stats = _statistics(np.concatenate(pooled, axis=1), task_means[start:start + rows], metrics, gamma)
        for m in metrics:
            dists[m][start:start + rows] = stats[m]
    pooled_all = np.concatenate(tasks)[None, :]
    means_all = np.array([[t.mean() for t in tasks]])
    points = _statistics(pooled_all, means_all, metrics, gamma)
    aggregate = {m: _interval(points[m][0], dists[m], confidence, method) for m in metrics}
    per_task = {k: _interval(means_all[0, i], task_means[:, i], confidence, method)
                for i, k in enumerate(keys)}
    return BootstrapResult(aggregate, per_task, int(reps), float(confidence), method)


def _aligned(scores_x, scores_y):
    keys_x, x = _as_tasks(scores_x)
    keys_y, y = _as_tasks(scores_y)
    if keys_x != keys_y:
        raise ValueError(f"X and Y must cover the same tasks in the same order; got {keys_x} and {keys_y}")
    return x, y


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 over all run pairs, along the last two axes of
    ``x[..., :, None]`` and ``y[..., None, :]``."""
    xs, ys = x[..., :, None], y[..., None, :]
    return (xs > ys).mean(axis=(-2, -1)) + 0.5 * (xs == ys).mean(axis=(-2, -1))


def probability_of_improvement(scores_x, scores_y) -> float:
    """Probability that a run of X beats a run of Y on the same task, averaged over tasks
    (rliable's ``probability_of_improvement``: per task the Mann-Whitney U statistic of X
    over Y divided by ``n_x * n_y``; arXiv 2108.13264). X and Y may differ in runs."""
    x, y = _aligned(scores_x, scores_y)
    return float(np.mean([_improvement(a, b) for a, b in zip(x, y)]))


def probability_of_improvement_interval(scores_x, scores_y, *, reps: int = DEFAULT_REPS,
                                        confidence: float = 0.95, method: str = "percentile",
                                        seed: int | np.random.Generator = 0) -> Interval:
    """:func:`probability_of_improvement` with a stratified-bootstrap interval: in each
    resample the runs of X and of Y are redrawn independently within every task
    (rliable's ``StratifiedIndependentBootstrap``)."""
    _check_settings(reps, confidence, method)
    x, y = _aligned(scores_x, scores_y)
    rng = np.random.default_rng(seed)
    total = np.zeros(reps)
    for a, b in zip(x, y):
        chunk = max(1, min(reps, _CHUNK_ELEMENTS // (a.size * b.size)))
        for start in range(0, reps, chunk):
            rows = min(chunk, reps - start)
            xa = a[rng.integers(0, a.size, size=(rows, a.size))]
            yb = b[rng.integers(0, b.size, size=(rows, b.size))]
            total[start:start + rows] += _improvement(xa, yb)
    point = probability_of_improvement(scores_x, scores_y)
    return _interval(point, total / len(x), confidence, method)
