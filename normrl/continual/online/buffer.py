"""Reservoir replay buffer (Vitter 1985, "Random sampling with a reservoir", Algorithm R)
as used by ER, ER-ACE and DER++ in online continual learning.

Item number s (0-based, counting every item ever offered) is stored at slot s while the
buffer is not full; afterwards it replaces slot j = randint(0, s) when j < capacity, so
every item seen so far is in the buffer with equal probability capacity / (s+1).
Images are kept as uint8 on the buffer's device, with label, task id and (for DER++)
the logits the model gave the item when it was stored. The slot draws use a CPU
generator seeded at construction (reproducible, independent of the model's RNG).
"""
from __future__ import annotations

import torch


class ReservoirBuffer:
    """Fixed-capacity reservoir of (image, label, task, logits).

    Args:
        capacity: number of items (500 / 2000 in the AdaB²N protocol).
        image_shape: (C, H, W) of one image.
        num_logits: width of the stored logits [0: none stored].
        device: where the items live ["cpu"].
        seed: seed of the slot and sampling draws [0].
    """

    def __init__(self, capacity: int, image_shape: tuple[int, ...], num_logits: int = 0, device: str | torch.device = "cpu", seed: int = 0):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.capacity = capacity
        self.device = torch.device(device)
        self.images = torch.zeros((capacity, *image_shape), dtype=torch.uint8, device=self.device)
        self.labels = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.tasks = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.logits = torch.zeros(capacity, num_logits, device=self.device) if num_logits else None
        self.seen = 0
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def slots_for(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Reservoir decisions for the next ``n`` items: (positions in the batch that
        are stored, their slots), later items winning a slot drawn twice."""
        chosen: dict[int, int] = {}
        for i in range(n):
            s = self.seen + i
            slot = s if s < self.capacity else int(torch.randint(0, s + 1, (1,), generator=self.generator))
            if slot < self.capacity:
                chosen[slot] = i
        self.seen += n
        slots = torch.tensor(sorted(chosen), dtype=torch.long)
        items = torch.tensor([chosen[s] for s in sorted(chosen)], dtype=torch.long)
        return items, slots

    def add(self, images: torch.Tensor, labels: torch.Tensor, tasks: torch.Tensor, logits: torch.Tensor | None = None) -> None:
        """Offer a batch to the reservoir."""
        if (logits is None) != (self.logits is None):
            raise ValueError("pass logits exactly when the buffer was built with num_logits > 0")
        items, slots = self.slots_for(images.shape[0])
        if items.numel() == 0:
            return
        items = items.to(images.device, non_blocking=True)
        slots = slots.to(self.device, non_blocking=True)
        self.images[slots] = images[items].to(self.device)
        self.labels[slots] = labels[items].to(self.device)
        self.tasks[slots] = tasks[items].to(self.device)
        if logits is not None:
            self.logits[slots] = logits[items].detach().to(self.device, self.logits.dtype)

    def sample(self, n: int) -> torch.Tensor:
        """Indices of ``min(n, len(self))`` distinct stored items, uniformly at random."""
        size = len(self)
        if size == 0:
            raise ValueError("cannot sample from an empty buffer")
        return torch.randperm(size, generator=self.generator)[: min(n, size)].to(self.device)
