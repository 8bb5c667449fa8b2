"""The slot helpers behind Seaquest's lists: order, appends, re-layout, memory layout."""
import pytest
import torch

from normrl.envs.minatar.entity_slots import (any_slot, blend, memory, pack, reorder_ring, ring_append, ring_rank,
                                              shift_append, step_x, unpack)

U8 = torch.uint8
NAMES = ("valid", "v")


def _packed(valid, v):
    """Packed slots (num_envs, K, 2) from per-slot lists of rows ``[env][slot]``."""
    return torch.stack([torch.tensor(valid, dtype=U8), torch.tensor(v, dtype=U8)], dim=2)


def _live_in_ring_order(packed, tail):
    """Per env: the live values, oldest first (by rank from the tail)."""
    rank = ring_rank(tail, packed.shape[1])
    out = []
    for i in range(packed.shape[0]):
        slots = sorted(range(packed.shape[1]), key=lambda k: int(rank[k, i]))
        out.append([int(packed[i, k, 1]) for k in slots if packed[i, k, 0]])
    return out


def test_ring_rank_counts_from_the_tail():
    tail = torch.tensor([0, 3, 255], dtype=U8)  # 255 wraps: slot 255 & 3 = 3
    assert ring_rank(tail, 4).t().tolist() == [[0, 1, 2, 3], [1, 2, 3, 0], [1, 2, 3, 0]]
    with pytest.raises(ValueError, match="power of two"):
        ring_rank(tail, 6)


def test_ring_append_writes_the_tail_slot_and_keeps_the_order():
    packed = _packed([[0, 0, 0, 0], [1, 1, 0, 0]], [[0, 0, 0, 0], [7, 8, 0, 0]])
    tail = torch.tensor([0, 2], dtype=U8)
    for value in (5, 6):
        entity = torch.tensor([[1, 1], [value, value]], dtype=U8)
        do = torch.tensor([True, value == 6])
        packed = ring_append(packed, ring_rank(tail, 4), do, entity)
        tail = tail + do.view(U8)
    assert _live_in_ring_order(packed, tail) == [[5, 6], [7, 8, 6]]
    assert packed[1, :, 1].tolist() == [7, 8, 6, 0]  # nothing else moved


def test_reorder_ring_widens_and_narrows_keeping_rank_order():
    packed = _packed([[1, 0, 1, 1]], [[1, 0, 3, 4]])
    tail = torch.tensor([2], dtype=U8)  # ranks: slot 2 oldest (0), slot 3, slot 0, slot 1 newest
    assert _live_in_ring_order(packed, tail) == [[3, 4, 1]]
    wide = reorder_ring(packed, tail, 8)
    assert wide.shape == (1, 8, 2) and _live_in_ring_order(wide, torch.tensor([0], dtype=U8)) == [[3, 4, 1]]
    assert wide[0, :, 1].tolist() == [0, 0, 0, 0, 3, 4, 1, 0]  # the newest ranks at the end, tail at slot 0
    narrow = reorder_ring(wide, torch.tensor([0], dtype=U8), 4)
    assert narrow[0, :, 1].tolist() == [3, 4, 1, 0]
    assert memory(wide).is_contiguous()  # env-innermost memory


def test_shift_append_puts_the_newest_first_and_drops_the_oldest():
    packed = _packed([[1, 1, 0, 0]], [[2, 1, 0, 0]])
    entity = torch.tensor([[1], [3]], dtype=U8)
    packed = shift_append(packed, torch.tensor([True]), entity)
    assert packed[0, :, 1].tolist() == [3, 2, 1, 0]
    assert shift_append(packed, torch.tensor([False]), entity)[0, :, 1].tolist() == [3, 2, 1, 0]
    assert shift_append(packed, torch.tensor([True]), entity)[0, :, 1].tolist() == [3, 3, 2, 1]


def test_pack_clears_empty_slots_and_keeps_env_innermost_memory():
    fields = {"valid": torch.tensor([[1, 0], [0, 1]], dtype=U8), "v": torch.tensor([[5, 6], [7, 8]], dtype=U8)}
    packed = pack(fields, NAMES)
    assert packed.shape == (2, 2, 2)  # (num_envs, K, fields)
    assert packed[:, :, 1].tolist() == [[5, 0], [0, 8]]
    assert memory(packed).is_contiguous() and unpack(packed, NAMES)["v"].is_contiguous()


def test_blend_step_and_any_slot():
    mask = torch.tensor([[True, False], [False, True]])
    for dtype in (U8, torch.int16, torch.int32):
        old = torch.tensor([[1, 2], [3, 4]], dtype=dtype)
        new = torch.tensor([9, -1 if dtype != U8 else 200], dtype=dtype)
        assert torch.equal(blend(mask, new, old), torch.where(mask, new, old))
    x = torch.tensor([[0, 9], [4, 4]], dtype=U8)
    dx = torch.tensor([[255, 1], [1, 255]], dtype=U8)
    moved = step_x(x, dx, torch.tensor([[True, True], [False, True]]))
    assert moved.tolist() == [[255, 10], [4, 3]]  # both ends leave the grid: x > 9
    assert any_slot(mask & torch.tensor([[False, False], [False, True]])).tolist() == [False, True]
