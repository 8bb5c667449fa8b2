"""The return matrix of a continual RL run (rows: task visits; columns: tasks)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ContinualResult:
    """The return matrix of a stream run.

    Attributes:
        task_names: the distinct tasks (matrix columns), in stream order.
        visit_tasks: the task id trained at each visit (matrix rows).
        returns: ``returns[v][k]`` = mean evaluation return on task ``k`` after visit
            ``v``; NaN where task ``k`` had not been seen yet.
        eval_steps: ``agent.num_steps`` at each row's evaluation.
        completed: whether every visit of the stream was trained and evaluated.
    """

    task_names: list[str]
    visit_tasks: list[int]
    returns: list[list[float]]
    eval_steps: list[int]
    completed: bool

    @property
    def matrix(self) -> torch.Tensor:
        """``returns`` as a float64 tensor ``(rows done, num tasks)``."""
        if not self.returns:
            return torch.empty(0, len(self.task_names), dtype=torch.float64)
        return torch.tensor(self.returns, dtype=torch.float64)

    def final_returns(self) -> list[float]:
        """The last evaluated row (returns on every task after the last visit done)."""
        return list(self.returns[-1]) if self.returns else []

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ContinualResult":
        """Inverse of :meth:`to_dict` (``None`` read back as NaN)."""
        returns = [[math.nan if v is None else float(v) for v in row] for row in data["returns"]]
        return cls(list(data["task_names"]), list(data["visit_tasks"]), returns, list(data["eval_steps"]),
                   bool(data["completed"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN written as ``None``)."""
        return {
            "task_names": list(self.task_names),
            "visit_tasks": list(self.visit_tasks),
            "returns": [[None if math.isnan(v) else v for v in row] for row in self.returns],
            "eval_steps": list(self.eval_steps),
            "completed": self.completed,
        }

    def format_table(self) -> str:
        """The matrix as aligned text: one row per visit (``<visit>:<task>``), one column per task."""
        width = max([8, *(len(n) for n in self.task_names)])
        labels = [f"{v}:{self.task_names[t]}" for v, t in enumerate(self.visit_tasks)]
        label_width = max([len("trained \\ eval"), *(len(lab) for lab in labels)])
        lines = ["trained \\ eval".ljust(label_width) + "".join(n.rjust(width + 2) for n in self.task_names)]
        for label, row in zip(labels, self.returns):
            cells = "".join(("-" if math.isnan(x) else f"{x:.2f}").rjust(width + 2) for x in row)
            lines.append(label.ljust(label_width) + cells)
        return "\n".join(lines)
