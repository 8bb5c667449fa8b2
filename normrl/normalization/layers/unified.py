"""Unified Normalization (Yang et al., ACM MM 2022, arXiv 2208.01313).

Exact variant (facts from the paper and its reference code; the code's clamped
"gradient compensation" ratio r is not implemented, i.e. r = 1, which is also what that
code uses during its first max(1000, warmup_iters) steps):

* No centering (μ̂ = 0). Per channel, ``x2_t = mean_B(x²)``; the last ``window_size``
  (M) values are kept in ``running_window``.
* Fluctuation smoothing: after ``warmup_iters`` steps and once M steps have been seen,
  training normalizes by the geometric mean of the window,
  ``σ̂² = exp(mean_i log x2_{t−i})``; before that by ``x2_t`` itself.
* Adaptive outlier filtration (``outlier_filtration=True``, the reference code's
  suggestion for vision), active whenever smoothing is (after warmup, window full): with ``V`` the (unbiased) variance of all entries of
  ``sqrt(window)`` before this step, the batch is an outlier when
  ``AM(window) − GM(window) > M·V`` in any channel; it is then normalized by ``x2_t``,
  its window slot is replaced by ``running_var``, and the backward uses this step's
  gradient statistic instead of the smoothed one.
* ``z = x / sqrt(σ̂² + eps)``, ``y = γ·z + β``; ``running_var ← momentum·running_var +
  (1−momentum)·σ̂²``.
* Backward (approximate): ``g = ∂L/∂z``, ``g_z = mean_B(g·z)`` stored in a window of M
  (``running_grad_window``); ``ψ ← momentum·ψ + (1−momentum)·ḡ`` where ḡ is the window
  mean (or ``g_z`` itself during warmup / the first M steps / outliers);
  ``∂L/∂x = (g − ψ·z) / sqrt(σ̂² + eps)`` (``g − ḡ·z`` for an outlier batch).
* Eval: ``y = γ · x / sqrt(running_var + eps) + β``.

Defaults (the reference code's): ``window_size=4``, ``warmup_iters=4000``,
``outlier_filtration=False``, ``eps=1e-5``, ``momentum=0.9``; ``layout="nc"``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers._layout import channel_shape, check_input, check_layout
from normrl.normalization.layers._scale_only import StepCounted, reduce_dims
from normrl.normalization.registry import register_norm


class _UnifiedScale(torch.autograd.Function):
    """x -> x / sqrt(var + eps) with Unified Normalization's smoothed backward."""

    @staticmethod
    def forward(ctx, x, var, skip, smooth, grad_window, grad_ema, slot, momentum, eps, dims, shape):
        inv = torch.rsqrt(var + eps).view(shape)
        z = x * inv
        ctx.save_for_backward(z, inv, skip, grad_window, grad_ema)
        ctx.smooth, ctx.slot, ctx.momentum, ctx.dims, ctx.shape = smooth, slot, momentum, dims, shape
        return z

    @staticmethod
    def backward(ctx, g):
        z, inv, skip, grad_window, grad_ema = ctx.saved_tensors
        with torch.no_grad():
            gz = (g * z).mean(ctx.dims)
            grad_window[ctx.slot].copy_(torch.where(skip, grad_ema, gz))
            mean_gz = torch.where(skip, gz, grad_window.mean(0)) if ctx.smooth else gz
            grad_ema.mul_(ctx.momentum).add_((1.0 - ctx.momentum) * mean_gz)
            psi = torch.where(skip, mean_gz, grad_ema)
        return (g - psi.view(ctx.shape) * z) * inv, None, None, None, None, None, None, None, None, None, None


@register_norm("unified", description="Unified Normalization: geometric-mean smoothed scale-only BN with outlier filtration", paper="arXiv 2208.01313")
class UnifiedNorm(StepCounted):
    """Unified Normalization (UN).

    Args:
        num_features: number of features/channels.
        layout: ``"nc"`` [default] or ``"nchw"``.
        window_size: M, statistics kept for smoothing [4].
        warmup_iters: steps before smoothing starts [4000].
        outlier_filtration: skip smoothing for outlier batches [False].
        eps: added to the variance [1e-5].
        momentum: keep-factor of ``running_var`` and of ψ [0.9].
    """

    layouts = ("nc", "nchw")
    batch_dependent = True

    def __init__(self, num_features: int, *, layout: str = "nc", window_size: int = 4, warmup_iters: int = 4000, outlier_filtration: bool = False, eps: float = 1e-5, momentum: float = 0.9):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 2:
            raise ValueError(f"window_size must be an int >= 2, got {window_size!r}")
        if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError(f"warmup_iters must be a non-negative int, got {warmup_iters!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.window_size, self.warmup_iters = window_size, warmup_iters
        self.outlier_filtration = bool(outlier_filtration)
        self.eps, self.momentum = float(eps), float(momentum)
        self.weight = nn.Parameter(torch.ones(self.num_features))
        self.bias = nn.Parameter(torch.zeros(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))
        self.register_buffer("running_window", torch.ones(window_size, self.num_features))
        self.register_buffer("running_grad_window", torch.zeros(window_size, self.num_features))
        self.register_buffer("running_grad_ema", torch.zeros(self.num_features))
        self.register_buffer("num_outliers", torch.tensor(0, dtype=torch.long))
        self._init_counter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        shape = channel_shape(x, self.layout)
        if not self.training:
            z = x * torch.rsqrt(self.running_var + self.eps).view(shape)
            return z * self.weight.view(shape) + self.bias.view(shape)
        dims = reduce_dims(x, self.layout)
        step = self._count_step()
        m = self.window_size
        slot = step % m
        smooth = step > m and step >= self.warmup_iters
        with torch.no_grad():
            x2 = x.detach().square().mean(dims).to(self.running_window.dtype)
            recorded = self.running_window.sqrt().var()
            self.running_window[slot].copy_(x2)
            skip = torch.zeros((), dtype=torch.bool, device=x.device)
            if self.outlier_filtration and smooth:
                am = self.running_window.mean(0)
                gm = self.running_window.log().mean(0).exp()
                skip = ((am - gm) > recorded * m).any()
                self.running_window[slot].copy_(torch.where(skip, self.running_var, x2))
                self.num_outliers.add_(skip.long())
            var = torch.where(skip, x2, self.running_window.log().mean(0).exp()) if smooth else x2
            self.running_var.mul_(self.momentum).add_((1.0 - self.momentum) * var)
        z = _UnifiedScale.apply(x, var.to(x.dtype), skip, smooth, self.running_grad_window, self.running_grad_ema, slot, self.momentum, self.eps, dims, shape)
        return z * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, window_size={self.window_size}, warmup_iters={self.warmup_iters}, outlier_filtration={self.outlier_filtration}, eps={self.eps}, momentum={self.momentum}"
