"""Return matrices of continual RL runs (rows: task visits, columns: tasks; from
``summary["continual"]``): their mean over seeds and per-task forgetting.

Forgetting of task ``k`` in one run, after Chaudhry et al. 2018 (arXiv 1801.10112) on a
visits x tasks matrix ``R`` with ``V`` rows: the best return on ``k`` over the rows
from its first visit to the second-to-last row, minus the final row's return on ``k``,

    F_k = max_{v in [first(k), V-2]} R[v, k] - R[V-1, k],

undefined (None) when ``k`` was first visited in the last row. Positive values mean
the agent lost return on ``k`` it once had.
"""
from __future__ import annotations

import math


def _value(x) -> float:
    return math.nan if x is None else float(x)


def task_forgetting(continual: dict) -> list[float | None]:
    """Per-task forgetting ``F_k`` of one run's ``continual`` dict (``returns``,
    ``visit_tasks``), in task order; None where undefined."""
    rows = [[_value(x) for x in row] for row in continual["returns"]]
    if not rows:
        return [None] * len(continual["task_names"])
    first = {}
    for v, task in enumerate(continual["visit_tasks"][:len(rows)]):
        first.setdefault(task, v)
    out: list[float | None] = []
    last = rows[-1]
    for k in range(len(continual["task_names"])):
        earlier = [rows[v][k] for v in range(first.get(k, len(rows)), len(rows) - 1) if not math.isnan(rows[v][k])]
        out.append(max(earlier) - last[k] if earlier and not math.isnan(last[k]) else None)
    return out


def mean_matrix(matrices: list[list[list[float | None]]]) -> list[list[float | None]]:
    """Element-wise mean over runs of equally shaped return matrices (None entries --
    tasks not seen yet -- are skipped; None where no run has a value)."""
    if not matrices:
        return []
    shape = (len(matrices[0]), len(matrices[0][0]) if matrices[0] else 0)
    for m in matrices:
        if (len(m), len(m[0]) if m else 0) != shape:
            raise ValueError(f"return matrices differ in shape: {shape} vs {(len(m), len(m[0]) if m else 0)}")
    out = []
    for i in range(shape[0]):
        row = []
        for j in range(shape[1]):
            vals = [m[i][j] for m in matrices if m[i][j] is not None and not math.isnan(m[i][j])]
            row.append(sum(vals) / len(vals) if vals else None)
        out.append(row)
    return out
