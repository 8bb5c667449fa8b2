"""What every continual plasticity problem provides: a sequence of tasks held as tensors,
the protocol of the paper it comes from, and seeds derived per task.

A *problem* is a deterministic function of its seed: ``problem.task(t)`` returns the
same tensors whenever it is called, in any order, so an arm trained on the tasks and the
fresh-initialization oracle see exactly the same data. The learner
(:func:`normrl.continual.task_sequence.train_task_sequence`) takes its training
settings from :attr:`ContinualProblem.protocol` unless told otherwise.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

__all__ = ["TaskData", "Protocol", "ContinualProblem", "derive_seed", "check_count"]

KINDS = ("classification", "regression")


def derive_seed(seed: int, *keys: Any) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (SHA-256 of their text), so every
    (seed, purpose, task) has its own independent stream and no stream depends on how
    many numbers another one drew."""
    text = "/".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int, or ``ValueError`` when it is not an int ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


@dataclass
class TaskData:
    """One task: inputs ``x`` ``(N, in_dim)`` float32 and targets ``y`` (int64 class
    labels ``(N,)``, or float32 regression targets ``(N, out_dim)``).

    ``meta`` holds what defines the task (its label seed, permutation, flipping bits)."""

    x: torch.Tensor
    y: torch.Tensor
    meta: dict

    def __post_init__(self):
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} rows and y {self.y.shape[0]}")

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class Protocol:
    """The training protocol a problem's paper used (the learner's defaults).

    Attributes:
        hidden: hidden widths of the MLP.
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: learning rate.
        batch_size: examples per update.
        epochs: passes over each task's examples.
        shuffle: whether each epoch visits the examples in a new random order (False
            for a stream, which is consumed in order once).
        activation: hidden activation.
        source: where these values come from.
    """

    hidden: tuple[int, ...]
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    shuffle: bool
    activation: str = "relu"
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class ContinualProblem:
    """Base class of the plasticity problems (see the module docstring).

    Class attributes: ``name`` (registry name), ``kind`` (``"classification"`` or
    ``"regression"``), ``paper`` (the source), ``protocol`` (:class:`Protocol`).
    Instance attributes: ``in_dim``, ``out_dim``, ``num_tasks``, ``seed``.
    Subclasses implement :meth:`task` and :meth:`config`.
    """

    name: ClassVar[str] = "problem"
    kind: ClassVar[str] = "classification"
    paper: ClassVar[str] = ""
    protocol: ClassVar[Protocol]

    in_dim: int
    out_dim: int
    num_tasks: int
    seed: int

    def task(self, t: int) -> TaskData:
        """The data of task ``t`` (``0 <= t < num_tasks``)."""
        raise NotImplementedError

    def config(self) -> dict:
        """The constructor keywords that rebuild this problem (for config.json)."""
        raise NotImplementedError

    def task_size(self) -> int:
        """Examples per task (the same for every task)."""
        return len(self.task(0))

    def _check_task(self, t: int) -> int:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < self.num_tasks:
            raise ValueError(f"task must be an int in [0, {self.num_tasks}), got {t!r}")
        return t

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
