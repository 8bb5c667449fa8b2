"""Continual-learning metrics over an accuracy matrix.

``R[i, j]`` is the accuracy on task j's test set after training on tasks 0..i
(T x T, fractions in [0, 1]; entries above the diagonal are the accuracies on tasks
not trained yet).

* Final average accuracy: ``mean_j R[T-1, j]``.
* Average forgetting (Chaudhry et al. 2018, arXiv 1801.10112):
  ``mean_{j<T-1} max_{l in [j, T-2]} (R[l, j] − R[T-1, j])``.
* Backward transfer (Lopez-Paz & Ranzato 2017, arXiv 1706.08840):
  ``mean_{j<T-1} (R[T-1, j] − R[j, j])``.

Forgetting and backward transfer are 0.0 for a single task.
"""
from __future__ import annotations

import torch


def _matrix(acc) -> torch.Tensor:
    r = torch.as_tensor(acc, dtype=torch.float64)
    if r.dim() != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be square T x T, got shape {tuple(r.shape)}")
    return r


def final_average_accuracy(acc) -> float:
    """Mean accuracy over all tasks after the last task."""
    r = _matrix(acc)
    return float(r[-1].mean())


def average_forgetting(acc) -> float:
    """Mean over the first T-1 tasks of the best earlier accuracy minus the final one."""
    r = _matrix(acc)
    t = r.shape[0]
    if t == 1:
        return 0.0
    drops = [float((r[j:t - 1, j].max() - r[t - 1, j])) for j in range(t - 1)]
    return sum(drops) / len(drops)


def backward_transfer(acc) -> float:
    """Mean over the first T-1 tasks of final accuracy minus the accuracy just after
    learning the task (negative when tasks are forgotten)."""
    r = _matrix(acc)
    t = r.shape[0]
    if t == 1:
        return 0.0
    return float(sum(r[t - 1, j] - r[j, j] for j in range(t - 1)) / (t - 1))
