"""Fixed slots for entities that come and go, stored env-innermost (batched MinAtar games).

A game whose entities appear and disappear (Seaquest's enemies, divers, bullets) keeps
each kind in ``K`` slots per sub-env, each slot a few uint8 fields, ``valid`` first.
The reference keeps Python lists in spawn order, and some rules depend on that order
(which enemy a bullet hits first, which diver is picked up first), so the slots keep
it too, in one of two ways, neither of which ever compacts:

* shift slots (for lists of a handful of entries, :func:`shift_append`): slot 0 holds
  the newest entity; appending shifts every slot one place older, and the oldest slot
  falls off (it must be empty by then). The order is the slot index, so a rule reads
  "the i-th newest" as plain row ``i``.
* a ring (for long lists, :func:`ring_append`): an entity is written at the ring's
  tail and stays in its slot until it is removed; the order is the slot's rank counted
  from the tail (:func:`ring_rank`). Appending touches one slot, whatever ``K``.

Either is exact as long as no live entity is ``K`` or more appends old; each game
proves its bounds. Empty slots hold zeros in every field (:func:`pack` clears them).

Storage is env-innermost: the fields of a list are one ``(fields, K, num_envs)`` uint8
tensor, so each field is a ``(K, num_envs)`` view. On CPU a per-env value
``(num_envs,)`` then broadcasts along contiguous rows, and a reduction over the slots
(``amax(0)``, ``amin(0)``) is an elementwise pass over ``K`` rows; with the env dimension
first instead, the same eager ops were 5-20x slower (torch's small-inner-dimension
paths). The public state still has ``num_envs`` first: packed slots are the ``(num_envs,
K, fields)`` view (``.permute(2, 1, 0)``) of that memory, so per-sub-env indexing,
resets and checkpoints work on them like on any other state tensor.

A ring's ``K`` is a power of two (at most 256); its tail counts appends modulo 256, and
its slot is ``tail & (K - 1)``.
"""
from __future__ import annotations

import torch

U8 = torch.uint8


def blend(mask: torch.Tensor, new, old: torch.Tensor) -> torch.Tensor:
    """``new`` where ``mask`` (bool) else ``old``, as integer arithmetic in ``old``'s dtype.

    Exact for integer dtypes (wrap-around cancels); on CPU it is many times faster than
    ``torch.where`` in eager mode, whose kernel is not vectorized for these shapes.
    """
    return old + mask.view(U8) * (new - old)


def any_slot(mask: torch.Tensor) -> torch.Tensor:
    """``(num_envs,)`` bool: is ``mask`` (``(K, num_envs)`` bool) true in any slot."""
    return mask.view(U8).amax(0).view(torch.bool)


def step_x(x: torch.Tensor, dx: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
    """Columns one cell along the heading ``dx`` (uint8: 1 right, 255 left, i.e. -1
    modulo 256) where ``moving``. Leaving the grid on the left wraps to 255, which any
    ``x > 9`` test catches."""
    return x + moving.view(U8) * dx


def check_width(width: int) -> None:
    """Raise ValueError unless ``width`` is a valid ring width (a power of two, 1-256)."""
    if width < 1 or width > 256 or width & (width - 1):
        raise ValueError(f"a slot ring's width must be a power of two in 1..256, got {width}")


def memory(packed: torch.Tensor) -> torch.Tensor:
    """The ``(fields, K, num_envs)`` view of packed slots ``(num_envs, K, fields)``."""
    return packed.permute(2, 1, 0)


def unpack(packed: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Field views ``(K, num_envs)`` of packed slots ``(num_envs, K, fields)`` (no copy)."""
    return dict(zip(names, memory(packed).unbind(0)))


def pack(fields: dict[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
    """``(num_envs, K, fields)`` view of fresh ``(fields, K, num_envs)`` memory; empty slots all zero."""
    stacked = torch.stack([fields[name].view(U8) for name in names])
    return (stacked * fields["valid"].view(U8)).permute(2, 1, 0)


def shift_append(packed: torch.Tensor, do: torch.Tensor, entity: torch.Tensor) -> torch.Tensor:
    """Shift slots (slot 0 the newest): where ``do`` (bool ``(num_envs,)``), every slot moves
    one place older and ``entity`` (``(fields, num_envs)`` uint8, its ``valid`` field 1)
    takes slot 0. The oldest slot must be empty. Returns new packed slots."""
    mem = memory(packed)
    shifted = torch.cat([entity.unsqueeze(1), mem[:, :-1]], dim=1)
    return blend(do, shifted, mem).permute(2, 1, 0)


def ring_rank(tail: torch.Tensor, width: int) -> torch.Tensor:
    """``(width, num_envs)`` uint8 rank of each ring slot: 0 at the tail slot (the next to
    be written), larger is newer, ``width - 1`` the newest."""
    check_width(width)
    return (torch.arange(width, dtype=U8, device=tail.device).view(-1, 1) - tail) & (width - 1)


def ring_append(packed: torch.Tensor, rank: torch.Tensor, do: torch.Tensor, entity: torch.Tensor) -> torch.Tensor:
    """Ring slots: where ``do``, write ``entity`` (``(fields, num_envs)`` uint8, its
    ``valid`` field 1) at the tail slot (``rank`` 0, see :func:`ring_rank`), which must
    be empty (all fields 0, as :func:`pack` leaves empty slots). Returns the new packed
    slots; the caller advances the tail by ``do``."""
    at = (rank == torch.zeros_like(rank[0])) & do
    return (memory(packed) + at.view(U8) * entity.unsqueeze(1)).permute(2, 1, 0)


def reorder_ring(packed: torch.Tensor, tail: torch.Tensor, width: int) -> torch.Tensor:
    """A packed ring ``(num_envs, K, fields)`` rewritten at ``width`` slots with its tail at 0.

    The newest ``min(K, width)`` ranks keep their order (new slot ``j`` holds the entity
    of old rank ``j + K - width``); when narrowing, older slots are dropped, so callers
    narrow only past empty ones. The result's tail is 0. Used only when a ring changes
    width, so the gather's cost does not matter.
    """
    check_width(width)
    n, old = packed.shape[0], packed.shape[1]
    mem = memory(packed)  # (fields, K, n)
    rank = torch.arange(width, device=packed.device).view(-1, 1) + (old - width)
    slot = (tail.long().view(1, -1) + rank) & (old - 1)  # (width, n)
    moved = mem.gather(1, slot.unsqueeze(0).expand(mem.shape[0], width, n))
    moved = moved * (rank >= 0).to(U8)  # slots with no old rank (widening) start empty
    return moved.contiguous().permute(2, 1, 0)
