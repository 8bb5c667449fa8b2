"""Permuted-input tasks: the same digits and labels, a new pixel permutation every task.

The input-distribution shift of Permuted MNIST (Goodfellow et al. 2013, arXiv
1312.6211), the plasticity benchmark of Dohare et al. 2024 (Nature 632:768, arXiv
2306.13812) and Kumar et al. 2023 (arXiv 2308.11958), here on scikit-learn's digits
(64 pixels, 1,797 images, no download).

Exact variant: every image (:func:`standardized_digits`) with its true label; task
``t`` permutes the 64 standardized pixels by
``make_permutation(64, derive_seed(seed, "permutation", t))`` — task 0 included, so
all tasks are alike; the permutation changes exactly at the task boundary.

Default protocol (:attr:`PermutedDigits.protocol`): Kumar et al.'s Permuted MNIST
(``skumar9876/L2_Init`` ``config/env/permuted_mnist.yaml``): one pass over each task's
images in batches of 16 (10,000 images, 625 updates per task there; 1,797 images, 113
updates here), 500 tasks, a 2×100 ReLU MLP, Adam (lr swept in the paper; 1e-3 here).
With only 64 inputs and 1,797 images this is a weaker shift than MNIST's; the suite
uses several epochs per task.
"""
from __future__ import annotations

import torch

from normrl.data.problems.base import ContinualProblem, Protocol, TaskData, check_count, derive_seed
from normrl.data.problems.digits_inputs import NUM_DIGITS, standardized_digits
from normrl.utils.permutation import make_permutation

__all__ = ["PermutedDigits"]


class PermutedDigits(ContinualProblem):
    """Permuted-input digits (see the module docstring).

    Args:
        num_tasks: number of permutations [500, Kumar et al.].
        num_inputs: images [1797: all].
        scaling: ``"standardize"`` [per-pixel z-score] or ``"unit"`` (intensities / 16).
        seed: seed of the image subset and of every task's permutation [0].
    """

    name = "permuted-inputs"
    kind = "classification"
    paper = "Dohare et al. 2024, arXiv 2306.13812; protocol of Kumar et al. 2023, arXiv 2308.11958"
    protocol = Protocol(hidden=(100, 100), optimizer="adam", lr=1e-3, batch_size=16, epochs=1, shuffle=True,
                        source="Kumar et al. 2023 Permuted MNIST (L2_Init permuted_mnist.yaml): one pass per task in "
                               "batches of 16, 500 tasks, MLP 2x100, Adam (lr swept; 1e-3 here)")

    def __init__(self, num_tasks: int = 500, num_inputs: int = NUM_DIGITS, scaling: str = "standardize",
                 seed: int = 0) -> None:
        self.num_tasks = check_count("num_tasks", num_tasks)
        self.num_inputs = check_count("num_inputs", num_inputs)
        self.seed = int(seed)
        self.scaling = scaling
        self.x, self.y = standardized_digits(num_inputs, seed, scaling)
        self.in_dim, self.out_dim = self.x.shape[1], 10

    def permutation(self, t: int) -> torch.Tensor:
        """Task ``t``'s pixel permutation (int64 ``(64,)``): task input ``x[:, perm]``."""
        self._check_task(t)
        return make_permutation(self.in_dim, derive_seed(self.seed, "permutation", t))

    def task(self, t: int) -> TaskData:
        perm = self.permutation(t)
        return TaskData(self.x[:, perm], self.y, {"task": t, "permutation": perm.tolist()})

    def task_size(self) -> int:
        return self.num_inputs

    def config(self) -> dict:
        return {"num_tasks": self.num_tasks, "num_inputs": self.num_inputs, "scaling": self.scaling, "seed": self.seed}
