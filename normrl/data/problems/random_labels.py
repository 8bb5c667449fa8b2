"""Random-label memorization: the same inputs, new uniformly random labels every task.

The problem of Lyle et al. 2023 ("Understanding plasticity in neural networks", ICML,
arXiv 2303.01486) that the NaP paper (Lyle et al. 2024, arXiv 2407.01800, Fig. 1)
uses on CIFAR-10, here on scikit-learn's 8x8 digits so it needs no download. A network
that keeps its plasticity memorizes every new labelling about as well as a freshly
initialized one; one that loses it falls towards chance (1 / classes).

Exact variant: ``num_inputs`` fixed digits images (:func:`standardized_digits`), the
same for every task; task ``t`` draws ``y_t ~ Uniform{0..classes-1}`` i.i.d. for every
input from a generator seeded by ``(seed, "labels", t)``, so each task's labels are
fixed by the seed alone and change exactly at the task boundary.

Default protocol (:attr:`RandomLabelDigits.protocol`): Kumar, Marklund & Van Roy
2023 (arXiv 2308.11958), Random-Label MNIST, a variation of Lyle et al.'s problem
with a published configuration (``skumar9876/L2_Init`` ``config/env/random_label_mnist.yaml``):
1,200 images, 50 tasks of 30,000 updates of batch 16 (400 epochs), a 2×100 ReLU MLP,
Adam (the paper sweeps the learning rate; 1e-3 here). Lyle et al. 2023 give no
configuration we could read; the NaP paper re-randomizes MNIST labels every 1,000 steps.
"""
from __future__ import annotations

import torch

from normrl.data.problems.base import ContinualProblem, Protocol, TaskData, check_count, derive_seed
from normrl.data.problems.digits_inputs import standardized_digits

__all__ = ["RandomLabelDigits"]


class RandomLabelDigits(ContinualProblem):
    """Random-label memorization on digits (see the module docstring).

    Args:
        num_tasks: number of labellings [50, Kumar et al.].
        num_inputs: fixed images [1200, Kumar et al.; at most 1797].
        num_classes: labels drawn uniformly from ``0..num_classes-1`` [10].
        scaling: ``"standardize"`` [per-pixel z-score] or ``"unit"`` (intensities / 16).
        seed: seed of the image subset and of every task's labels [0].
    """

    name = "random-labels"
    kind = "classification"
    paper = "Lyle et al. 2023, arXiv 2303.01486; protocol of Kumar et al. 2023, arXiv 2308.11958"
    protocol = Protocol(hidden=(100, 100), optimizer="adam", lr=1e-3, batch_size=16, epochs=400, shuffle=True,
                        source="Kumar et al. 2023 Random-Label MNIST (L2_Init random_label_mnist.yaml): 1,200 images, "
                               "50 tasks x 30,000 updates of batch 16, MLP 2x100, Adam (lr swept; 1e-3 here)")

    def __init__(self, num_tasks: int = 50, num_inputs: int = 1200, num_classes: int = 10, scaling: str = "standardize",
                 seed: int = 0) -> None:
        self.num_tasks = check_count("num_tasks", num_tasks)
        self.num_inputs = check_count("num_inputs", num_inputs)
        self.num_classes = check_count("num_classes", num_classes, 2)
        self.seed = int(seed)
        self.scaling = scaling
        self.x, _ = standardized_digits(num_inputs, seed, scaling)
        self.in_dim, self.out_dim = self.x.shape[1], self.num_classes

    def labels(self, t: int) -> torch.Tensor:
        """Task ``t``'s labels, int64 ``(num_inputs,)``."""
        self._check_task(t)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "labels", t))
        return torch.randint(0, self.num_classes, (self.num_inputs,), generator=gen)

    def task(self, t: int) -> TaskData:
        return TaskData(self.x, self.labels(t), {"task": t})

    def task_size(self) -> int:
        return self.num_inputs

    def config(self) -> dict:
        return {"num_tasks": self.num_tasks, "num_inputs": self.num_inputs, "num_classes": self.num_classes,
                "scaling": self.scaling, "seed": self.seed}
