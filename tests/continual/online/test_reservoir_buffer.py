"""Reservoir buffer: fill order, uniform retention, sampling."""
import torch

from normrl.continual.online.buffer import ReservoirBuffer


def _offer(buf, start, n):
    ids = torch.arange(start, start + n)
    images = ids.view(n, 1, 1, 1).to(torch.uint8)
    buf.add(images, ids, ids // 4, logits=ids.float().view(n, 1) if buf.logits is not None else None)


def test_fills_in_order_then_keeps_capacity():
    buf = ReservoirBuffer(6, (1, 1, 1), num_logits=1)
    _offer(buf, 0, 4)
    assert len(buf) == 4 and buf.labels[:4].tolist() == [0, 1, 2, 3]
    _offer(buf, 4, 10)
    assert len(buf) == 6 and buf.seen == 14
    # Every stored item keeps its own label, task, image and logits together.
    torch.testing.assert_close(buf.images.view(-1).long(), buf.labels)
    torch.testing.assert_close(buf.tasks, buf.labels // 4)
    torch.testing.assert_close(buf.logits.view(-1), buf.labels.float())


def test_every_item_is_retained_with_equal_probability():
    capacity, stream, trials = 5, 20, 1500
    counts = torch.zeros(stream)
    for seed in range(trials):
        buf = ReservoirBuffer(capacity, (1, 1, 1), seed=seed)
        for start in range(0, stream, 10):
            _offer(buf, start, 10)
        counts[buf.labels] += 1
    freq = counts / trials
    # Expected capacity / stream = 0.25; binomial std ~0.011.
    assert (freq - 0.25).abs().max() < 0.05


def test_sample_returns_distinct_stored_indices():
    buf = ReservoirBuffer(50, (1, 1, 1))
    _offer(buf, 0, 8)
    idx = buf.sample(10)
    assert sorted(idx.tolist()) == list(range(8))
    _offer(buf, 8, 60)
    idx = buf.sample(10)
    assert len(set(idx.tolist())) == 10 and idx.max() < 50
