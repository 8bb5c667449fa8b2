"""Class-split image streams for online continual learning (Split CIFAR, Split digits).

:class:`SplitDataset` splits any uint8 image classification data into tasks of
``num_classes / n_tasks`` classes each; :func:`SplitCIFAR` builds it for CIFAR-10/100
(``SplitCIFAR("cifar10", n_tasks=5)`` is Split CIFAR-10 5x2; ``SplitCIFAR("cifar100",
n_tasks=10)`` / ``n_tasks=20`` are Split CIFAR-100 10x10 / 20x5) and
:func:`split_digits` for scikit-learn's digits. The classes are taken in
natural order (0, 1, 2, ...) for ``class_order_seed=0`` and in a seeded random
permutation otherwise; task t holds the classes ``class_order[t*k:(t+1)*k]``.

Labels are *remapped to their position in the class order*, so task t always owns the
labels ``t*k .. t*k+k-1``: a class-incremental classifier has one head over all
classes; the task-incremental scenario restricts the logits to the task's k labels
(:meth:`SplitDataset.logit_mask`). ``original_label = class_order[label]``.

Images stay uint8 on ``device``; :meth:`SplitDataset.preprocess` converts a batch to
float on the device, with the standard per-channel normalization and, when asked,
the usual CIFAR augmentation (random 32x32 crop of the 4-pixel zero-padded image and
horizontal flip with probability 1/2), all vectorized.
"""
from __future__ import annotations

import os

import torch

from normrl.data.cifar import get_spec, load_cifar
from normrl.data.digits import MAX_PIXEL, NUM_CLASSES, load_digits_tensors

SCENARIOS = ("class-incremental", "task-incremental")
#: Default number of tasks per dataset name (Split CIFAR-10 5x2, Split CIFAR-100 10x10, digits 5x2).
DEFAULT_TASKS = {"cifar10": 5, "cifar100": 10, "digits": 5}

#: Per-channel mean and std of the training images (the values the online-CL code
#: bases use for their normalization).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def class_order(num_classes: int, seed: int) -> torch.Tensor:
    """``arange(num_classes)`` for seed 0, else a permutation from ``torch.Generator(seed)``."""
    if seed == 0:
        return torch.arange(num_classes)
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(int(seed)))


class SplitDataset:
    """A class-split continual stream over an image classification dataset.

    Built from uint8 ``(N, C, H, W)`` images and labels in ``[0, num_classes)``;
    :func:`SplitCIFAR` and :func:`split_digits` build it for CIFAR-10/100 and for
    scikit-learn's digits.

    Args:
        name: dataset name (recorded in summaries).
        train_images, train_labels, test_images, test_labels: the data.
        num_classes: number of classes.
        n_tasks: number of tasks; must divide ``num_classes``.
        class_order_seed: 0 for the natural class order, else a seeded permutation [0].
        scenario: ``"class-incremental"`` [default] or ``"task-incremental"``.
        device: where images and labels are kept ["cpu"].
        augment: random crop (padding 4) and horizontal flip in training [False].
        mean, std: per-channel normalization in [0, 1] units [None: the training
            images' own].

    Attributes:
        train_images, test_images: uint8 (N, C, H, W) on ``device``.
        train_labels, test_labels: int64 remapped labels (task t owns t*k..t*k+k-1).
        class_order: original class of each remapped label.
        classes_per_task, num_classes, n_tasks, scenario.
    """

    def __init__(self, name: str, train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                 test_labels: torch.Tensor, *, num_classes: int, n_tasks: int, class_order_seed: int = 0,
                 scenario: str = "class-incremental", device: str | torch.device = "cpu", augment: bool = False,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None):
        if mean is None or std is None:
            pixels = train_images.float().div(255).transpose(0, 1).reshape(train_images.shape[1], -1)
            mean = tuple(pixels.mean(1).tolist()) if mean is None else mean
            std = tuple(pixels.std(1).clamp_min(1e-3).tolist()) if std is None else std
        self._setup(name, train_images, train_labels, test_images, test_labels, num_classes, n_tasks, class_order_seed,
                    scenario, device, augment, mean, std)

    def _setup(self, name, train_x, train_y, test_x, test_y, num_classes, n_tasks, seed, scenario, device, augment, mean, std):
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks <= 0 or num_classes % n_tasks:
            divisors = [d for d in range(1, num_classes + 1) if num_classes % d == 0]
            raise ValueError(f"n_tasks must divide the {num_classes} classes of {name} (one of {divisors}), got {n_tasks!r}")
        if train_x.dtype != torch.uint8 or train_x.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {train_x.dtype} {tuple(train_x.shape)}")
        self.name, self.scenario, self.n_tasks, self.num_classes = name, scenario, n_tasks, num_classes
        self.classes_per_task = num_classes // n_tasks
        self.class_order = class_order(num_classes, seed)
        self.class_order_seed = int(seed)
        self.device = torch.device(device)
        self.augment = bool(augment)
        position = torch.empty(num_classes, dtype=torch.long)
        position[self.class_order] = torch.arange(num_classes)
        self.train_images = train_x.to(self.device)
        self.test_images = test_x.to(self.device)
        self.train_labels = position[train_y.long()].to(self.device)
        self.test_labels = position[test_y.long()].to(self.device)
        c = train_x.shape[1]
        if len(mean) != c or len(std) != c:
            raise ValueError(f"mean/std need {c} channels, got {len(mean)}/{len(std)}")
        self.mean = torch.tensor(mean, device=self.device).view(1, c, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, c, 1, 1)

    # ------------------------------------------------------------------ tasks
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train_images.shape[1:])

    def task_of(self, labels: torch.Tensor) -> torch.Tensor:
        """Task id of every (remapped) label."""
        return torch.div(labels, self.classes_per_task, rounding_mode="floor")

    def task_classes(self, task: int) -> list[int]:
        """Original class ids of ``task``."""
        self._check_task(task)
        k = self.classes_per_task
        return self.class_order[task * k:(task + 1) * k].tolist()

    def _check_task(self, task: int) -> None:
        if not 0 <= int(task) < self.n_tasks:
            raise ValueError(f"task must be in [0, {self.n_tasks}), got {task!r}")

    def train_indices(self, task: int) -> torch.Tensor:
        """Indices into ``train_images`` of ``task``'s samples (dataset order)."""
        self._check_task(task)
        return torch.nonzero(self.task_of(self.train_labels) == task).flatten()

    def test_indices(self, task: int) -> torch.Tensor:
        """Indices into ``test_images`` of ``task``'s samples."""
        self._check_task(task)
        return torch.nonzero(self.task_of(self.test_labels) == task).flatten()

    def logit_mask(self, tasks: torch.Tensor) -> torch.Tensor:
        """Bool (N, num_classes): True on the labels each sample may predict — all of
        them (class-incremental) or its task's k labels (task-incremental)."""
        labels = torch.arange(self.num_classes, device=tasks.device)
        if self.scenario == "class-incremental":
            return torch.ones(tasks.shape[0], self.num_classes, dtype=torch.bool, device=tasks.device)
        return self.task_of(labels).unsqueeze(0) == tasks.unsqueeze(1)

    # ------------------------------------------------------------------ images
    def preprocess(self, images: torch.Tensor, train: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (N, C, H, W) -> normalized float, augmented when ``train`` and ``augment``."""
        x = images.float().div_(255.0)
        if train and self.augment:
            x = random_crop_flip(x, padding=4, generator=generator)
        return (x - self.mean) / self.std


def random_crop_flip(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random crop of the zero-padded batch back to its size, then a
    horizontal flip with probability 1/2 (one indexing op, no Python loop over images)."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device, generator=generator)
    flip = torch.rand(n, 1, device=x.device, generator=generator) < 0.5
    rows = dy + torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = dx + torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def SplitCIFAR(dataset: str = "cifar10", n_tasks: int = 5, class_order_seed: int = 0, scenario: str = "class-incremental",
               *, root: str | os.PathLike = "data", download: bool = False, device: str | torch.device = "cpu",
               augment: bool = False, normalize: bool = True) -> SplitDataset:
    """Split CIFAR-10 or CIFAR-100 (the official archives in ``root``, verified by md5;
    ``download=True`` fetches them when missing) as a :class:`SplitDataset`.

    ``SplitCIFAR("cifar10", n_tasks=5)`` is Split CIFAR-10 5x2; ``SplitCIFAR("cifar100",
    n_tasks=10)`` / ``n_tasks=20`` are Split CIFAR-100 10x10 / 20x5. ``normalize``
    subtracts the usual per-channel mean and divides by the std (:data:`CIFAR_STATS`).
    """
    spec = get_spec(dataset)
    train = load_cifar(root, spec, train=True, download=download)
    test = load_cifar(root, spec, train=False, download=False)
    mean, std = CIFAR_STATS[spec.name] if normalize else ((0.0,) * 3, (1.0,) * 3)
    return SplitDataset(spec.name, *train, *test, num_classes=spec.num_classes, n_tasks=n_tasks,
                        class_order_seed=class_order_seed, scenario=scenario, device=device, augment=augment,
                        mean=mean, std=std)


def split_digits(n_tasks: int = 5, class_order_seed: int = 0, scenario: str = "class-incremental", *, test_fraction: float = 0.3, device: str | torch.device = "cpu") -> SplitDataset:
    """scikit-learn's digits (1,797 8x8 grayscale images, 10 classes) as a
    :class:`SplitDataset`. Pixels 0..16 are scaled to uint8 0..255; a fixed stratified
    split (seed 0) keeps ``test_fraction`` of every class for testing."""
    pixels, labels = load_digits_tensors()
    images = pixels.mul(255.0 / MAX_PIXEL).round().clamp(0, 255).to(torch.uint8).unsqueeze(1)
    gen = torch.Generator().manual_seed(0)
    test_mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(NUM_CLASSES):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        test_mask[idx[: int(round(test_fraction * len(idx)))]] = True
    return SplitDataset("digits", images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask],
                        num_classes=NUM_CLASSES, n_tasks=n_tasks, class_order_seed=class_order_seed, scenario=scenario,
                        device=device)


def load_split(dataset: str, *, n_tasks: int | None = None, class_order_seed: int = 0,
               scenario: str = "class-incremental", root: str | os.PathLike | None = None, download: bool = False,
               device: str | torch.device = "cpu", augment: bool = False) -> SplitDataset:
    """The split stream ``dataset`` (``"cifar10"``, ``"cifar100"`` or ``"digits"``) with
    :data:`DEFAULT_TASKS` tasks unless ``n_tasks`` is given. CIFAR needs ``root`` (the
    folder that holds, or with ``download=True`` will hold, the extracted archive)."""
    from normrl.utils.errors import UserError

    if dataset not in DEFAULT_TASKS:
        raise UserError(f"unknown dataset {dataset!r}; valid: {', '.join(DEFAULT_TASKS)}")
    n_tasks = DEFAULT_TASKS[dataset] if n_tasks is None else n_tasks
    if dataset == "digits":
        return split_digits(n_tasks, class_order_seed, scenario, device=device)
    if root is None:
        raise UserError(f"--data-dir is required for {dataset} (the folder that holds or will hold the extracted "
                        "archive; add --download to fetch it)")
    return SplitCIFAR(dataset, n_tasks, class_order_seed, scenario, root=root, download=download, device=device,
                      augment=augment)
