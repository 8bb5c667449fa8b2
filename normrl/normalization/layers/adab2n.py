"""AdaB²N: Adaptive Balance of BN (Lyu et al., NeurIPS 2023, arXiv 2310.08855).

Exact variant implemented (facts from the paper and the official code, lvyilin/AdaB2N):

* Training statistics are a weighted mean and a weighted *biased* variance over the
  samples of the batch. Each task k has a learnable logit ``task_logits[k]`` (θ_k,
  init 0). With n_k samples of task k in the batch, the task weights are the posterior
  mean of a Dirichlet, ``π_k = (e^{θ_k} + n_k) / Σ_j (e^{θ_j} + n_j)``, and sample i
  of task k(i) gets weight ``w_i = π_{k(i)} / n_{k(i)}``. Then
  ``μ_B = Σ_i w_i · mean_hw(x_i)`` and ``σ²_B = Σ_i w_i · mean_hw((x_i − μ_B)²)``.
  During task 0 (one task) every weight is 1/N: ordinary batch statistics.
* Tasks absent from the batch: the official code gives them mass in the denominator,
  so the sample weights then sum to less than one and μ_B shrinks towards 0. normrl
  sums j only over the tasks present in the batch (``present_tasks_only=True``, the
  default), so the weights always sum to one; ``present_tasks_only=False`` reproduces
  the official code (j over every task 0..t seen so far, t = ``current_task``).
* Running statistics use the modified momentum η₁ = m^κ, η_s = η_{s−1}/(η_{s−1}+(1−m)^κ)
  over all training batches s (never reset at task switches): κ=1 is a plain EMA with
  factor m, κ=0 the cumulative mean; for 0<κ<1 η_s → 1−(1−m)^κ. ``running_var`` tracks
  the biased batch variance (torch's BatchNorm tracks the unbiased one).
* After every training forward the layer stores ``aux_loss = MSE(μ_B, running_mean) +
  MSE(σ²_B, running_var)`` (running statistics after this batch's update, as in the
  official code); the training loop adds ``λ · Σ_layers aux_loss``
  (:func:`adab2n_aux_loss`). Gradients reach the network and θ through μ_B, σ²_B.
* Eval: plain BatchNorm with the running statistics.

Per-sample task ids come from the training loop (replay buffers store one per item),
never from a global: wrap the forward pass in ``with adab2n_task_ids(model, ids):``,
call ``layer.set_task_ids(ids)`` (until changed), or ``layer.set_batch_task_ids(ids)``
(next training forward only; the DQN agent calls this with each replay minibatch). Without ids every sample counts as the layer's
``current_task`` (set by ``on_task_start``), so ``layer(x)`` alone works.

Layouts: ``"nchw"`` (AdaB²N-2d, statistics over N, H, W per channel) and ``"nc"``
((N, C) or (N, ..., C); a "sample" is one index of the first axis, its middle axes
are averaged like H, W).

Defaults: ``momentum=0.1`` (m), ``kappa=1.0`` (paper grid {0.1, 0.4, 0.7, 1}),
``eps=1e-5``, ``affine=True``, ``max_tasks=100`` (size of θ; task ids must be below
it), ``present_tasks_only=True``. The paper's λ grid for the auxiliary loss is
{0.01, 0.1, 1, 10}.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.normalization.layers._layout import check_input, check_layout
from normrl.normalization.registry import register_norm


@register_norm("adab2n", description="AdaB²N: BatchNorm with task-balanced batch statistics and kappa-momentum", paper="arXiv 2310.08855")
class AdaB2N(nn.Module):
    """BatchNorm whose training statistics balance the tasks present in the batch.

    Args:
        num_features: number of features/channels.
        layout: ``"nc"`` [default] or ``"nchw"``.
        momentum: m of the running-statistics update [0.1].
        kappa: κ in [0, 1] of the modified momentum [1.0].
        eps: added to the variance [1e-5].
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) [True].
        max_tasks: number of learnable task logits θ (init 0) [100].
        present_tasks_only: normalize π over the tasks present in the batch [True];
            False reproduces the official code (all tasks seen so far).

    Attributes:
        aux_loss: the auxiliary loss of the last training forward (a 0-dim tensor).
        task_ids: per-sample task ids for the next forward, or None.
    """

    layouts = ("nc", "nchw")
    batch_dependent = True

    def __init__(self, num_features: int, *, layout: str = "nc", momentum: float = 0.1, kappa: float = 1.0, eps: float = 1e-5, affine: bool = True, max_tasks: int = 100, present_tasks_only: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum!r}")
        if not 0.0 <= kappa <= 1.0:
            raise ValueError(f"kappa must be in [0, 1], got {kappa!r}")
        if isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or max_tasks <= 0:
            raise ValueError(f"max_tasks must be a positive int, got {max_tasks!r}")
        self.momentum = float(momentum)
        self.kappa = float(kappa)
        self.eps = float(eps)
        self.max_tasks = max_tasks
        self.present_tasks_only = bool(present_tasks_only)
        self.weight = nn.Parameter(torch.ones(self.num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(self.num_features)) if affine else None
        self.task_logits = nn.Parameter(torch.zeros(max_tasks))
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.register_buffer("eta", torch.tensor(0.0))  # η of the last update
        self.register_buffer("current_task", torch.tensor(0, dtype=torch.long))
        self.register_buffer("tasks_seen", torch.tensor(1, dtype=torch.long))
        self.task_ids: torch.Tensor | None = None
        self._one_shot = False
        self.aux_loss = torch.zeros(())

    # ------------------------------------------------------------------ task interface
    def on_task_start(self, task_id: int) -> None:
        """Make ``task_id`` the task of samples given without ids."""
        self._check_task_id(int(task_id))
        self.current_task.fill_(int(task_id))
        self.tasks_seen.fill_(max(int(self.tasks_seen), int(task_id) + 1))

    def on_task_end(self, task_id: int) -> None:
        """Count task ``task_id + 1`` as seen (the official code's ``end_task``)."""
        self.tasks_seen.fill_(max(int(self.tasks_seen), min(int(task_id) + 2, self.max_tasks)))

    def set_task_ids(self, task_ids: torch.Tensor | None) -> None:
        """Per-sample task ids (int tensor of shape (N,)) for the following forwards
        until changed; ``None`` means every sample is ``current_task``."""
        self._one_shot = False
        if task_ids is not None:
            task_ids = torch.as_tensor(task_ids)
            if task_ids.dim() != 1 or task_ids.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
                raise ValueError(f"task_ids must be a 1-d integer tensor, got dtype {task_ids.dtype} shape {tuple(task_ids.shape)}")
        self.task_ids = task_ids

    def set_batch_task_ids(self, task_ids: torch.Tensor) -> None:
        """Per-sample task ids for the *next training forward only* (the hook the RL
        agents call right before their training forward with the replay minibatch's
        task ids); forwards in between, e.g. acting, are not affected afterwards."""
        self.set_task_ids(task_ids)
        self._one_shot = True

    def _check_task_id(self, task_id: int) -> None:
        if not 0 <= task_id < self.max_tasks:
            raise ValueError(f"task id {task_id} is outside [0, max_tasks={self.max_tasks}); build the layer with a larger max_tasks")

    # ------------------------------------------------------------------ statistics
    def sample_weights(self, task_ids: torch.Tensor) -> torch.Tensor:
        """Weights w_i = π_{k(i)} / n_{k(i)} of the samples with ``task_ids`` (sum 1 when
        ``present_tasks_only``)."""
        ids = task_ids.long()
        counts = torch.zeros(self.max_tasks, device=ids.device, dtype=self.task_logits.dtype).index_add_(0, ids, torch.ones_like(ids, dtype=self.task_logits.dtype))
        concentration = self.task_logits.exp() + counts
        if self.present_tasks_only:
            concentration = concentration * (counts > 0)
        else:
            seen = torch.arange(self.max_tasks, device=ids.device) < torch.maximum(self.tasks_seen, ids.max() + 1)
            concentration = concentration * seen
        pi = concentration / concentration.sum()
        return pi[ids] / counts[ids]

    def _next_eta(self) -> torch.Tensor:
        m, k = self.momentum, self.kappa
        later = self.eta / (self.eta + (1.0 - m) ** k)
        return torch.where(self.num_batches_tracked == 0, m ** k, later)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        c = self.num_features
        if self.layout == "nchw":  # statistics over N, H, W; no layout copies
            xs, reduce, shape = x, (2, 3), (1, c, 1, 1)
        elif x.dim() == 2:  # (N, C): one position per sample
            xs, reduce, shape = x, None, (1, c)
        else:  # (N, L, C): samples, positions, channels
            xs, reduce, shape = x.reshape(x.shape[0], -1, c), (1,), (1, 1, c)
        if not self.training:
            flat = xs if self.layout == "nchw" else xs.reshape(-1, c)
            return F.batch_norm(flat, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps).reshape(x.shape)
        n = xs.shape[0]
        ids = self.task_ids
        if self._one_shot:
            self.task_ids, self._one_shot = None, False
        if ids is None:
            ids = self.current_task.expand(n)
        elif ids.shape[0] != n:
            raise ValueError(f"AdaB2N got {ids.shape[0]} task ids for a batch of {n} samples")
        w = self.sample_weights(ids.to(xs.device)).to(xs.dtype)
        mean = w @ (xs if reduce is None else xs.mean(reduce))
        squares = (xs - mean.view(shape)).square()
        var = w @ (squares if reduce is None else squares.mean(reduce))
        # Normalization and affine map folded into one per-channel scale and shift.
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
            shift = self.bias - mean * scale
        else:
            shift = -mean * scale
        y = torch.addcmul(shift.view(shape), xs, scale.view(shape))
        with torch.no_grad():
            eta = self._next_eta()
            self.eta.copy_(eta)
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), eta)
            self.running_var.lerp_(var.detach().to(self.running_var.dtype), eta)
        self.aux_loss = F.mse_loss(mean, self.running_mean) + F.mse_loss(var, self.running_var)
        return y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, momentum={self.momentum}, kappa={self.kappa}, eps={self.eps}, max_tasks={self.max_tasks}, present_tasks_only={self.present_tasks_only}"


def adab2n_layers(model: nn.Module) -> list[AdaB2N]:
    """Every :class:`AdaB2N` module of ``model`` (in ``model.modules()`` order)."""
    return [m for m in model.modules() if isinstance(m, AdaB2N)]


@contextlib.contextmanager
def adab2n_task_ids(model: nn.Module, task_ids: torch.Tensor | None) -> Iterator[None]:
    """Give every AdaB²N layer of ``model`` the per-sample ``task_ids`` of the batch
    for the forward passes inside the block, then clear them.

    Example::

        with adab2n_task_ids(model, torch.cat([stream_tids, replay_tids])):
            logits = model(torch.cat([stream_x, replay_x]))
        loss = ce + lam * adab2n_aux_loss(model)
    """
    layers = adab2n_layers(model)
    previous = [layer.task_ids for layer in layers]
    for layer in layers:
        layer.set_task_ids(task_ids)
    try:
        yield
    finally:
        for layer, ids in zip(layers, previous):
            layer.task_ids = ids


def adab2n_aux_loss(model: nn.Module) -> torch.Tensor:
    """Σ over the AdaB²N layers of ``model`` of their last training ``aux_loss``
    (0 when there are none); multiply by λ and add to the training loss."""
    layers = adab2n_layers(model)
    if not layers:
        return torch.zeros(())
    return torch.stack([layer.aux_loss.to(layers[0].running_mean.device) for layer in layers]).sum()
