"""Classification tasks held as tensors: the "dataset tasks" of a continual stream.

* :class:`SupervisedTask` — inputs, labels and a held-out split, with shuffled
  minibatches; a :class:`normrl.continual.Task` can hold one in place of an env id;
* :func:`permuted_digits_tasks` — input- or label-permuted copies of scikit-learn's 8x8
  digits (the supervised form of Permuted MNIST, Goodfellow et al. 2013,
  arXiv 1312.6211).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from normrl.data.digits import MAX_PIXEL, NUM_CLASSES, load_digits_tensors
from normrl.utils.permutation import make_permutation


@dataclass
class SupervisedTask:
    """A classification task held as tensors (a "dataset task" of a stream).

    Attributes:
        x, y: training inputs ``(N, ...)`` float32 and labels ``(N,)`` int64.
        x_test, y_test: held-out inputs and labels (used for evaluation).
        num_classes: number of labels.
        name: display name.

    A learner trains on :meth:`batches` and is evaluated on the test split.
    :meth:`make` is what :class:`normrl.continual.Task` calls: it returns the task
    moved to ``device`` (``num_envs`` and ``seed`` do not apply to a data set).
    """

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str = "supervised"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.x.shape[0] != self.y.shape[0] or self.x_test.shape[0] != self.y_test.shape[0]:
            raise ValueError("inputs and labels must have the same number of rows")

    def make(self, num_envs: int = 1, device: str | torch.device = "cpu", seed: int | None = None) -> "SupervisedTask":
        return self.to(device)

    def to(self, device: str | torch.device) -> "SupervisedTask":
        """A copy with every tensor on ``device``."""
        return SupervisedTask(self.x.to(device), self.y.to(device), self.x_test.to(device), self.y_test.to(device),
                              self.num_classes, self.name, dict(self.meta))

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        """One epoch of shuffled ``(x, y)`` minibatches (the last may be smaller)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        order = torch.randperm(self.x.shape[0], generator=generator).to(self.x.device)
        for start in range(0, order.numel(), batch_size):
            idx = order[start:start + batch_size]
            yield self.x[idx], self.y[idx]

    def close(self) -> None:
        """Nothing to release (so a data set can stand where an env is closed)."""


def permuted_digits_tasks(num_tasks: int = 10, mode: str = "input", seed: int = 0, test_fraction: float = 0.2) -> list[SupervisedTask]:
    """``num_tasks`` permuted copies of scikit-learn's 8x8 digits (10 classes).

    ``mode="input"`` permutes the 64 pixels per task; ``mode="label"`` permutes the 10
    class labels per task. Task 0 is the unpermuted problem; task ``k > 0`` uses the
    permutation seeded ``seed * 1000 + k``. Pixels are scaled to ``[0, 1]``; the
    train/test split (default 20% test) is one fixed shuffle seeded with ``seed``.
    """
    if mode not in ("input", "label"):
        raise ValueError(f"mode must be 'input' or 'label', got {mode!r}")
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}")
    pixels, y = load_digits_tensors()
    x = pixels.reshape(pixels.shape[0], -1).to(torch.float32) / MAX_PIXEL
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * x.shape[0]))
    test, train = order[:n_test], order[n_test:]
    tasks = []
    for k in range(num_tasks):
        perm_seed = None if k == 0 else seed * 1000 + k
        if mode == "input":
            perm = make_permutation(x.shape[1], perm_seed)
            xs, ys = x[:, perm], y
        else:
            perm = make_permutation(NUM_CLASSES, perm_seed)
            xs, ys = x, perm[y]
        tasks.append(SupervisedTask(xs[train], ys[train], xs[test], ys[test], NUM_CLASSES,
                                    name=f"digits-{mode}-perm{k}", meta={"permutation": perm.tolist()}))
    return tasks
