"""Replay losses of the online continual-learning methods, on one joint forward pass.

The trainer concatenates the stream batch and the replay batches and runs the model once
(batch-dependent norms then see current and replay samples together, as AdaB²N needs).
Each loss gets the logits of the whole batch and splits them itself.

* ``er`` — Experience Replay (Chaudhry et al. 2019, arXiv 1902.10486): cross-entropy over
  the concatenated stream + replay batch.
* ``er_ace`` — ER with Asymmetric Cross-Entropy (Caccia et al. 2022, arXiv 2104.05025):
  the stream samples' cross-entropy only competes among the classes present in the
  stream batch and the classes not seen yet (after the first task; the masking of the
  authors' mammoth implementation), plus the ordinary cross-entropy of the replay samples.
* ``derpp`` — DER++ (Buzzega et al. 2020, arXiv 2004.07211): stream cross-entropy
  + α·MSE(logits of replay draw 1, logits stored with them) + β·cross-entropy of
  replay draw 2 (two independent draws of the replay batch size).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ReplayBatch:
    """Labels and bookkeeping of one joint batch: stream first, then replay draws."""

    labels: torch.Tensor  # (N,) remapped labels of the whole joint batch
    n_stream: int
    n_replay: tuple[int, ...]  # sizes of the replay draws, in order
    task: int  # current task
    classes_per_task: int
    stored_logits: torch.Tensor | None = None  # DER++: logits stored with draw 1


def er_loss(logits: torch.Tensor, batch: ReplayBatch, **_) -> torch.Tensor:
    """Cross-entropy over the whole joint batch."""
    return F.cross_entropy(logits, batch.labels)


def er_ace_loss(logits: torch.Tensor, batch: ReplayBatch, **_) -> torch.Tensor:
    """Asymmetric cross-entropy on the stream part + cross-entropy on the replay part."""
    n = batch.n_stream
    stream_logits, stream_labels = logits[:n], batch.labels[:n]
    if batch.task > 0:
        allowed = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        allowed[stream_labels] = True
        allowed[(batch.task + 1) * batch.classes_per_task:] = True  # classes not seen yet
        stream_logits = stream_logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
    loss = F.cross_entropy(stream_logits, stream_labels)
    if logits.shape[0] > n:
        loss = loss + F.cross_entropy(logits[n:], batch.labels[n:])
    return loss


def derpp_loss(logits: torch.Tensor, batch: ReplayBatch, alpha: float = 0.1, beta: float = 0.5, **_) -> torch.Tensor:
    """DER++: stream CE + α·logit MSE on draw 1 + β·CE on draw 2."""
    n = batch.n_stream
    loss = F.cross_entropy(logits[:n], batch.labels[:n])
    if batch.n_replay:
        r1, r2 = batch.n_replay
        loss = loss + alpha * F.mse_loss(logits[n:n + r1], batch.stored_logits)
        loss = loss + beta * F.cross_entropy(logits[n + r1:n + r1 + r2], batch.labels[n + r1:n + r1 + r2])
    return loss


#: method name -> (loss function, number of replay draws per step)
METHODS = {"er": (er_loss, 1), "er_ace": (er_ace_loss, 1), "derpp": (derpp_loss, 2)}
