"""Dataset tasks: permuted digits and SupervisedTask batches."""

import pytest
import torch

from normrl.data.supervised import SupervisedTask, permuted_digits_tasks


def test_permuted_digits_input_and_label_modes():
    inp = permuted_digits_tasks(3, "input", seed=2)
    lab = permuted_digits_tasks(3, "label", seed=2)
    assert [t.name for t in inp] == ["digits-input-perm0", "digits-input-perm1", "digits-input-perm2"]
    t0, t1 = inp[0], inp[1]
    assert t0.x.shape[1] == 64 and t0.num_classes == 10 and t0.x.dtype == torch.float32
    assert t0.x.shape[0] + t0.x_test.shape[0] == 1797 and t0.x_test.shape[0] == 359
    assert float(t0.x.max()) == 1.0 and float(t0.x.min()) == 0.0
    perm = torch.tensor(t1.meta["permutation"])
    assert torch.equal(t1.x, t0.x[:, perm]) and torch.equal(t1.y, t0.y)
    assert torch.equal(t1.x_test, t0.x_test[:, perm])
    assert t0.meta["permutation"] == list(range(64))
    lperm = torch.tensor(lab[2].meta["permutation"])
    assert torch.equal(lab[2].y, lperm[lab[0].y]) and torch.equal(lab[2].x, lab[0].x)
    # the same seed gives the same tasks
    again = permuted_digits_tasks(3, "input", seed=2)
    assert torch.equal(again[2].x, inp[2].x)
    with pytest.raises(ValueError, match="'input' or 'label'"):
        permuted_digits_tasks(2, "pixels")


def test_supervised_task_batches_cover_one_epoch():
    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(10)
    task = SupervisedTask(x, y, x[:2], y[:2], num_classes=10, name="toy")
    batches = list(task.batches(4, torch.Generator().manual_seed(0)))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert all(torch.equal(bx.squeeze(1).long(), by) for bx, by in batches)
    assert task.make(num_envs=4, device="cpu", seed=1).name == "toy"
    with pytest.raises(ValueError, match="same number of rows"):
        SupervisedTask(x, y[:3], x, y, 10)
