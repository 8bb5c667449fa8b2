"""The plasticity problems' generators: shapes, determinism per seed, and data that
change exactly at task boundaries (and only there)."""

import pytest
import torch

from normrl.data.problems import PermutedDigits, RandomLabelDigits, SlowlyChangingRegression, make_problem, standardized_digits


def test_standardized_digits_is_zero_mean_unit_std_and_seeded_subset():
    x, y = standardized_digits()
    assert x.shape == (1797, 64) and x.dtype == torch.float32 and y.shape == (1797,)
    varying = x.std(dim=0) > 0
    assert torch.allclose(x.mean(dim=0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(x.std(dim=0)[varying], torch.ones(int(varying.sum())), atol=1e-5)
    assert int((~varying).sum()) >= 1 and torch.all(x[:, ~varying] == 0)  # a pixel that is always blank
    a, ya = standardized_digits(300, seed=4)
    b, yb = standardized_digits(300, seed=4)
    c, _ = standardized_digits(300, seed=5)
    assert torch.equal(a, b) and torch.equal(ya, yb) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="<= 1797"):
        standardized_digits(1798)
    u, yu = standardized_digits(scaling="unit")
    assert float(u.min()) == 0.0 and float(u.max()) == 1.0 and torch.equal(yu, y)
    assert torch.equal(RandomLabelDigits(num_tasks=1, num_inputs=1797, scaling="unit").x, u)
    with pytest.raises(ValueError, match=r"scaling must be one of \('standardize', 'unit'\)"):
        standardized_digits(10, scaling="minmax")


def test_random_labels_change_per_task_and_inputs_do_not():
    p = RandomLabelDigits(num_tasks=4, num_inputs=500, seed=3)
    assert (p.in_dim, p.out_dim, p.task_size()) == (64, 10, 500)
    tasks = [p.task(t) for t in range(4)]
    for d in tasks:
        assert d.x.shape == (500, 64) and d.y.shape == (500,) and d.y.dtype == torch.int64
        assert int(d.y.min()) >= 0 and int(d.y.max()) <= 9
        assert torch.equal(d.x, tasks[0].x)
    for a, b in zip(tasks, tasks[1:]):
        # new uniform labels: about 90% of them differ from the previous task's
        assert 0.8 < float((a.y != b.y).float().mean()) < 0.97
    # deterministic per seed and independent of the order tasks are asked for
    q = RandomLabelDigits(num_tasks=4, num_inputs=500, seed=3)
    assert torch.equal(q.task(2).y, tasks[2].y) and torch.equal(q.task(0).y, tasks[0].y)
    other = RandomLabelDigits(num_tasks=4, num_inputs=500, seed=4)
    assert not torch.equal(other.task(0).y, tasks[0].y)
    with pytest.raises(ValueError, match=r"task must be an int in \[0, 4\)"):
        p.task(4)


def test_permuted_inputs_permute_the_same_images_per_task():
    p = PermutedDigits(num_tasks=3, seed=1)
    base, labels = standardized_digits()
    perms = [p.permutation(t) for t in range(3)]
    for t, perm in enumerate(perms):
        assert sorted(perm.tolist()) == list(range(64))
        d = p.task(t)
        assert torch.equal(d.x, base[:, perm]) and torch.equal(d.y, labels)
        assert d.meta["permutation"] == perm.tolist()
    assert not torch.equal(perms[0], perms[1]) and not torch.equal(perms[1], perms[2])
    assert torch.equal(PermutedDigits(num_tasks=3, seed=1).permutation(2), perms[2])
    assert not torch.equal(PermutedDigits(num_tasks=3, seed=2).permutation(2), perms[2])


def _reference_target(p: SlowlyChangingRegression, x: torch.Tensor) -> torch.Tensor:
    """The LTU target computed unit by unit, straight from the definition."""
    m = p.num_bits
    out = torch.empty(x.shape[0], 1)
    for n in range(x.shape[0]):
        total = float(p.c[0])
        for i in range(p.target_features):
            pre = float(p.w[i] @ x[n]) + float(p.b[i])
            s = (m - float(p.w[i].sum()) + float(p.b[i])) / 2
            total += float(p.v[0, i]) * (1.0 if pre > p.beta * (m + 1) - s else 0.0)
        out[n, 0] = total
    return out


def test_bit_flipping_one_bit_flips_exactly_at_each_boundary():
    p = SlowlyChangingRegression(num_tasks=6, flip_after=400, seed=2)
    assert (p.in_dim, p.out_dim, p.task_size(), p.kind) == (20, 1, 400, "regression")
    assert set(p.w.unique().tolist()) == {-1.0, 1.0} and p.w.shape == (100, 20)
    tasks = [p.task(t) for t in range(6)]
    for t, d in enumerate(tasks):
        assert d.x.shape == (400, 20) and d.y.shape == (400, 1)
        # the 15 slowly changing bits are constant inside the task ...
        assert torch.all(d.x[:, :15] == p.flipping_bits(t))
        # ... the other 5 are random per example
        assert 0.35 < float(d.x[:, 15:].mean()) < 0.65 and len({tuple(r) for r in d.x[:, 15:].tolist()}) > 20
        if t == 0:
            assert torch.equal(d.y[:40], _reference_target(p, d.x[:40]))
        assert torch.equal(d.y, p.target(d.x))
    for a, b in zip(tasks, tasks[1:]):
        assert int((a.x[0, :15] != b.x[0, :15]).sum()) == 1  # flip_one: exactly one bit changed
    # the same seed gives the same stream, whatever order the tasks are asked in
    q = SlowlyChangingRegression(num_tasks=6, flip_after=400, seed=2)
    assert torch.equal(q.task(5).x, tasks[5].x) and torch.equal(q.task(5).y, tasks[5].y)
    assert not torch.equal(SlowlyChangingRegression(num_tasks=6, flip_after=400, seed=3).task(0).y, tasks[0].y)


def test_bit_flipping_redraw_all_variant_and_defaults():
    p = SlowlyChangingRegression(num_tasks=40, flip_after=10, flip_one=False, seed=0)
    changed = [int((p.flipping_bits(t) != p.flipping_bits(t + 1)).sum()) for t in range(39)]
    assert max(changed) > 1  # all 15 bits redrawn: usually several change
    d = SlowlyChangingRegression()
    assert (d.num_bits, d.num_flipping, d.flip_after, d.target_features, d.beta, d.flip_one, d.num_tasks) == \
        (20, 15, 10_000, 100, 0.7, True, 300)
    proto = SlowlyChangingRegression.protocol
    assert (proto.hidden, proto.optimizer, proto.lr, proto.batch_size, proto.shuffle) == ((5,), "sgd", 0.01, 1, False)


def test_make_problem_checks_names_and_options():
    assert isinstance(make_problem("slowly_changing_regression", num_tasks=2, flip_after=5), SlowlyChangingRegression)
    with pytest.raises(ValueError, match="valid: bit-flipping, permuted-inputs, random-labels"):
        make_problem("random-pixels")
    with pytest.raises(ValueError, match="has no option 'tasks'"):
        make_problem("random-labels", tasks=3)
    with pytest.raises(ValueError, match="num_tasks must be an int >= 1"):
        RandomLabelDigits(num_tasks=0)
