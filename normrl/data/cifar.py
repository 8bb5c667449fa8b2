"""CIFAR-10 / CIFAR-100 from the official python pickle archives, without torchvision.

Layout on disk (the extracted official archives):
``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``<root>/cifar-100-python/{train, test, meta}``. Each data file is a pickled dict with
``b"data"`` (N x 3072 uint8, 1024 red then 1024 green then 1024 blue values of a 32x32
image, row-major) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100).

:func:`load_cifar` returns ``(images, labels)``: uint8 (N, 3, 32, 32) and int64 (N,)
tensors. Every file's md5 is checked against the official value before it is read; a
mismatch raises :class:`CifarError` naming the file. When the folder is missing and
``download=True``, :func:`download_cifar` fetches the official archive, checks its md5
and every extracted file's md5 in a temporary folder next to the destination, and only
then renames it into place, so a half-written folder is never left behind.

The URLs and md5 sums are the official ones (www.cs.toronto.edu/~kriz/cifar.html; the
same values torchvision checks).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from normrl.utils.errors import UserError


class CifarError(UserError):
    """A missing, incomplete or corrupt CIFAR dataset (one line, names the file)."""


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant comes from and what its files must hash to."""

    name: str
    url: str
    archive_md5: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    md5: dict[str, str] = field(default_factory=dict)


CIFAR10 = CifarSpec(
    name="cifar10",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    label_key=b"labels",
    num_classes=10,
    md5={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
)

CIFAR100 = CifarSpec(
    name="cifar100",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    label_key=b"fine_labels",
    num_classes=100,
    md5={
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
)

SPECS = {"cifar10": CIFAR10, "cifar100": CIFAR100}


def get_spec(dataset: str | CifarSpec) -> CifarSpec:
    """The :class:`CifarSpec` of ``"cifar10"`` / ``"cifar100"`` (ValueError otherwise)."""
    if isinstance(dataset, CifarSpec):
        return dataset
    if dataset not in SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(SPECS)}")
    return SPECS[dataset]


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_folder(folder: str | os.PathLike, spec: CifarSpec) -> None:
    """Raise :class:`CifarError` naming the first missing file or wrong checksum."""
    folder = Path(folder)
    for name, expected in spec.md5.items():
        path = folder / name
        if not path.is_file():
            raise CifarError(f"{spec.name}: missing file {path}; delete {folder} and download again (--download), or extract {spec.url} into {folder.parent}")
        actual = md5sum(path)
        if actual != expected:
            raise CifarError(f"{spec.name}: wrong checksum for {path} (md5 {actual}, expected {expected}); the file is corrupt or not the official one — delete {folder} and download again")


def download_cifar(root: str | os.PathLike, dataset: str | CifarSpec = "cifar10") -> Path:
    """Download, verify and atomically extract ``dataset`` under ``root``; returns the
    dataset folder. Nothing is left at the destination unless every check passed."""
    spec = get_spec(dataset)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / spec.folder
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{spec.folder}.") as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        try:
            with urllib.request.urlopen(spec.url) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise CifarError(f"{spec.name}: could not download {spec.url} ({exc}); without internet, download it elsewhere and extract it into {root} (giving {final})") from exc
        actual = md5sum(archive)
        if actual != spec.archive_md5:
            raise CifarError(f"{spec.name}: wrong checksum for the downloaded archive {spec.url} (md5 {actual}, expected {spec.archive_md5})")
        extract = Path(tmp) / "extract"
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(extract, filter="data")
        verify_folder(extract / spec.folder, spec)
        if final.exists():  # another process finished first
            verify_folder(final, spec)
        else:
            os.replace(extract / spec.folder, final)
    return final


def ensure_cifar(root: str | os.PathLike, dataset: str | CifarSpec = "cifar10", download: bool = False) -> Path:
    """The verified dataset folder under ``root``, downloading it when missing and
    ``download`` is True; otherwise a :class:`CifarError` that says where to put it."""
    spec = get_spec(dataset)
    folder = Path(root) / spec.folder
    if not folder.is_dir():
        if not download:
            raise CifarError(f"{spec.name} not found: expected the folder {folder}; pass --download (download=True) or extract {spec.url} into {Path(root)}")
        return download_cifar(root, spec)
    verify_folder(folder, spec)
    return folder


def read_batch(path: str | os.PathLike, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickle file as (uint8 (N, 3, 32, 32), int64 (N,)) numpy arrays."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
        raise CifarError(f"cannot read {path}: {exc!r} (not a CIFAR pickle file)") from exc
    if len(labels) != len(data):
        raise CifarError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def load_cifar(root: str | os.PathLike, dataset: str | CifarSpec = "cifar10", train: bool = True, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of the train or test split.

    Args:
        root: folder that holds (or will hold) ``cifar-10-batches-py`` / ``cifar-100-python``.
        dataset: ``"cifar10"`` or ``"cifar100"``.
        train: the 50,000-image training split (True) or the 10,000-image test split.
        download: fetch and verify the official archive when the folder is missing.
    """
    spec = get_spec(dataset)
    folder = ensure_cifar(root, spec, download)
    parts = [read_batch(folder / name, spec.label_key) for name in (spec.train_files if train else spec.test_files)]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    if labels.numel() and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise CifarError(f"{spec.name}: labels outside [0, {spec.num_classes}) in {folder}")
    return images, labels
