"""CIFAR loading from the official pickle format, md5 verification, atomic download,
and the SplitCIFAR stream built on it (small fake datasets in the exact format)."""
import dataclasses
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from normrl.data.cifar import CIFAR10, CIFAR100, CifarError, download_cifar, load_cifar, md5sum
from normrl.data.split import SplitCIFAR, random_crop_flip, split_digits


def _write_batch(path, data, labels, label_key):
    with open(path, "wb") as f:
        pickle.dump({label_key: list(map(int, labels)), b"data": data, b"batch_label": b"fake", b"filenames": [b"x.png"] * len(labels)}, f, protocol=2)


def _fake_folder(root: Path, spec, per_file: int = 20, seed: int = 0):
    """The spec's files with random images/labels; returns a spec whose md5 table
    matches them (and the arrays written)."""
    rng = np.random.default_rng(seed)
    folder = root / spec.folder
    folder.mkdir(parents=True)
    arrays = {}
    for name in spec.train_files + spec.test_files:
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        labels = np.arange(per_file) % spec.num_classes
        _write_batch(folder / name, data, labels, spec.label_key)
        arrays[name] = (data, labels)
    meta = [n for n in spec.md5 if n not in arrays][0]
    with open(folder / meta, "wb") as f:
        pickle.dump({b"label_names": []}, f)
    md5 = {name: md5sum(folder / name) for name in spec.md5}
    return dataclasses.replace(spec, md5=md5), arrays


def test_official_urls_and_checksums_are_the_published_ones():
    assert CIFAR10.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert CIFAR10.archive_md5 == "c58f30108f718f92721af3b95e74349a"
    assert CIFAR100.archive_md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert set(CIFAR10.md5) == {*CIFAR10.train_files, "test_batch", "batches.meta"}
    assert set(CIFAR100.md5) == {"train", "test", "meta"}


def test_load_reads_images_channel_first_and_labels(tmp_path):
    spec, arrays = _fake_folder(tmp_path, CIFAR10)
    images, labels = load_cifar(tmp_path, spec, train=True)
    assert images.dtype == torch.uint8 and images.shape == (100, 3, 32, 32)
    data, lab = arrays["data_batch_2"]
    # Row layout: 1024 red, 1024 green, 1024 blue values, each 32x32 row-major.
    assert images[20, 1, 3, 5].item() == data[0, 1024 + 3 * 32 + 5]
    torch.testing.assert_close(labels[20:40], torch.from_numpy(lab))
    test_images, _ = load_cifar(tmp_path, spec, train=False)
    assert test_images.shape == (20, 3, 32, 32)


def test_corrupted_file_is_refused_by_name(tmp_path):
    spec, _ = _fake_folder(tmp_path, CIFAR10)
    path = tmp_path / spec.folder / "data_batch_3"
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CifarError, match="wrong checksum for .*data_batch_3"):
        load_cifar(tmp_path, spec)
    path.write_bytes(bytes(raw[:-10]))  # truncated: also refused
    with pytest.raises(CifarError, match="wrong checksum for .*data_batch_3"):
        load_cifar(tmp_path, spec)
    (tmp_path / spec.folder / "data_batch_3").unlink()
    with pytest.raises(CifarError, match="missing file .*data_batch_3"):
        load_cifar(tmp_path, spec)


def test_missing_folder_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(CifarError, match=r"cifar-10-batches-py.*--download"):
        load_cifar(tmp_path, "cifar10")
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        load_cifar(tmp_path, "cifar11")


def _archive(tmp_path, spec):
    src = tmp_path / "src"
    spec, _ = _fake_folder(src, spec)
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / spec.folder, arcname=spec.folder)
    return dataclasses.replace(spec, url=archive.as_uri(), archive_md5=md5sum(archive))


def test_download_verifies_and_extracts_atomically(tmp_path):
    spec = _archive(tmp_path, CIFAR100)
    root = tmp_path / "data"
    images, labels = load_cifar(root, spec, train=True, download=True)
    assert images.shape == (20, 3, 32, 32) and labels.max().item() < 100
    assert sorted(p.name for p in root.iterdir()) == [spec.folder]  # no temp folder left


def test_download_with_wrong_archive_checksum_leaves_nothing(tmp_path):
    spec = dataclasses.replace(_archive(tmp_path, CIFAR10), archive_md5="0" * 32)
    root = tmp_path / "data"
    with pytest.raises(CifarError, match="wrong checksum for the downloaded archive"):
        download_cifar(root, spec)
    assert list(root.iterdir()) == []
    bad_file = dataclasses.replace(_archive(tmp_path / "b", CIFAR10), md5={**CIFAR10.md5})  # official md5s: fake files fail
    with pytest.raises(CifarError, match="wrong checksum for .*data_batch_1"):
        download_cifar(root, bad_file)
    assert list(root.iterdir()) == []
    offline = dataclasses.replace(spec, url=(tmp_path / "nope.tar.gz").as_uri())
    with pytest.raises(CifarError, match="could not download"):
        download_cifar(root, offline)


def test_split_cifar_class_orders_remapping_and_scenarios(tmp_path):
    spec, arrays = _fake_folder(tmp_path, CIFAR10)
    natural = SplitCIFAR(spec, n_tasks=5, root=tmp_path)
    assert natural.class_order.tolist() == list(range(10))
    assert natural.task_classes(2) == [4, 5] and natural.classes_per_task == 2
    shuffled = SplitCIFAR(spec, n_tasks=5, class_order_seed=3, root=tmp_path)
    order = shuffled.class_order
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    assert order.tolist() == torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()
    # Remapped label = position of the original class in the order.
    _, original = load_cifar(tmp_path, spec)
    torch.testing.assert_close(order[shuffled.train_labels], original)
    idx = shuffled.train_indices(1)
    assert set(original[idx].tolist()) == set(shuffled.task_classes(1))
    til = SplitCIFAR(spec, n_tasks=5, root=tmp_path, scenario="task-incremental")
    mask = til.logit_mask(torch.tensor([0, 3]))
    assert mask[0].nonzero().flatten().tolist() == [0, 1] and mask[1].nonzero().flatten().tolist() == [6, 7]
    assert natural.logit_mask(torch.tensor([1])).all()
    with pytest.raises(ValueError, match="n_tasks must divide"):
        SplitCIFAR(spec, n_tasks=3, root=tmp_path)
    with pytest.raises(ValueError, match="scenario"):
        SplitCIFAR(spec, root=tmp_path, scenario="domain-incremental")


def test_split_cifar100_10x10_and_20x5(tmp_path):
    spec, _ = _fake_folder(tmp_path, CIFAR100, per_file=200)
    ten = SplitCIFAR(spec, n_tasks=10, root=tmp_path)
    twenty = SplitCIFAR(spec, n_tasks=20, root=tmp_path)
    assert ten.classes_per_task == 10 and twenty.classes_per_task == 5
    assert len(ten.train_indices(9)) == 20 and len(twenty.train_indices(19)) == 10


def test_preprocess_normalizes_and_augmentation_crops_and_flips(tmp_path):
    spec, _ = _fake_folder(tmp_path, CIFAR10)
    data = SplitCIFAR(spec, root=tmp_path)
    x = data.preprocess(data.train_images[:4])
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2615]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (data.train_images[:4].float() / 255 - mean) / std)
    img = torch.arange(2 * 1 * 4 * 4.0).view(2, 1, 4, 4)
    gen = torch.Generator().manual_seed(0)
    out = random_crop_flip(img, padding=2, generator=gen)
    gen = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (2, 1), generator=gen)
    dx = torch.randint(0, 5, (2, 1), generator=gen)
    flip = torch.rand(2, 1, generator=gen) < 0.5
    padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
    for i in range(2):
        crop = padded[i, :, dy[i, 0]:dy[i, 0] + 4, dx[i, 0]:dx[i, 0] + 4]
        torch.testing.assert_close(out[i], crop.flip(-1) if flip[i, 0] else crop)


def test_split_digits_goes_through_the_same_path():
    data = split_digits()
    assert data.image_shape == (1, 8, 8) and data.n_tasks == 5 and data.num_classes == 10
    assert len(data.train_labels) + len(data.test_labels) == 1797
    assert data.train_images.dtype == torch.uint8 and data.train_images.max().item() == 255
    for t in range(5):
        assert set(data.test_labels[data.test_indices(t)].tolist()) == {2 * t, 2 * t + 1}
