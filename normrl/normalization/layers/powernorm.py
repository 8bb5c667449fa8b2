"""PowerNorm (Shen, Yao, Gholami, Mahoney & Keutzer, ICML 2020, arXiv 2003.07845).

Exact variant: the paper's Algorithm 1 (without the optional group-scaling layer of the
authors' code). No mean subtraction; the scale is the running *quadratic mean* ψ².

* Training, after ``warmup_iters`` steps: ``x̂ = x / sqrt(ψ²_{t−1} + eps)``,
  ``y = γ·x̂ + β``, then ``ψ²_t = α_fwd·ψ²_{t−1} + (1−α_fwd)·mean_B(x²)`` (per channel).
  Approximate backward: ``x̃ = ∂L/∂x̂ − ν_{t−1}·x̂``, ``∂L/∂x = x̃ / sqrt(ψ²_{t−1} + eps)``,
  ``ν_t = ν_{t−1}·(1 − (1−α_bkw)·Γ_t) + (1−α_bkw)·Λ_t`` with ``Γ_t = mean_B(x̂²)`` and
  ``Λ_t = mean_B(x̃·x̂)``.
* Training, during warmup: ``x̂ = x / sqrt(mean_B(x²) + eps)`` with the exact gradient
  (ψ² is still updated, so it is ready when warmup ends).
* Eval: ``y = γ · x / sqrt(ψ² + eps) + β``.

Buffers: ``running_phi`` (ψ², init 1), ``running_grad_nu`` (ν, init 0),
``num_batches_tracked``. Defaults: ``alpha_fwd=0.9``, ``alpha_bkw=0.9``,
``warmup_iters=4000``, ``eps=1e-5``, ``affine=True``, ``layout="nc"``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from normrl.normalization.layers._layout import channel_shape, check_input, check_layout
from normrl.normalization.layers._scale_only import StepCounted, reduce_dims
from normrl.normalization.registry import register_norm


class _PowerScale(torch.autograd.Function):
    """x -> x / sqrt(phi + eps) with PowerNorm's approximate backward (updates nu)."""

    @staticmethod
    def forward(ctx, x, phi, nu, alpha_bkw, eps, dims, shape):
        inv = torch.rsqrt(phi + eps).view(shape)
        z = x * inv
        ctx.save_for_backward(z, inv, nu)
        ctx.alpha_bkw, ctx.dims, ctx.shape = alpha_bkw, dims, shape
        return z

    @staticmethod
    def backward(ctx, grad_z):
        z, inv, nu = ctx.saved_tensors
        x_tilde = grad_z - nu.view(ctx.shape) * z
        with torch.no_grad():
            gamma = z.square().mean(ctx.dims)
            lam = (x_tilde * z).mean(ctx.dims)
            a = 1.0 - ctx.alpha_bkw
            nu.mul_(1.0 - a * gamma).add_(a * lam)
        return x_tilde * inv, None, None, None, None, None, None


@register_norm("powernorm", description="PowerNorm: running quadratic mean, approximate backward", paper="arXiv 2003.07845")
class PowerNorm(StepCounted):
    """PowerNorm (scale by the running quadratic mean, no centering).

    Args:
        num_features: number of features/channels.
        layout: ``"nc"`` [default] or ``"nchw"``.
        alpha_fwd: EMA factor of ψ² [0.9].
        alpha_bkw: EMA factor of the backward statistic ν [0.9].
        warmup_iters: training steps that use batch statistics [4000].
        eps: added to ψ² [1e-5].
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) [True].
    """

    layouts = ("nc", "nchw")
    batch_dependent = True

    def __init__(self, num_features: int, *, layout: str = "nc", alpha_fwd: float = 0.9, alpha_bkw: float = 0.9, warmup_iters: int = 4000, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.layout = check_layout(type(self), layout)
        for name, value in (("alpha_fwd", alpha_fwd), ("alpha_bkw", alpha_bkw)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError(f"warmup_iters must be a non-negative int, got {warmup_iters!r}")
        self.alpha_fwd, self.alpha_bkw = float(alpha_fwd), float(alpha_bkw)
        self.warmup_iters = warmup_iters
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(self.num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(self.num_features)) if affine else None
        self.register_buffer("running_phi", torch.ones(self.num_features))
        self.register_buffer("running_grad_nu", torch.zeros(self.num_features))
        self._init_counter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input(self, x)
        shape = channel_shape(x, self.layout)
        dims = reduce_dims(x, self.layout)
        if not self.training:
            z = x * torch.rsqrt(self.running_phi + self.eps).view(shape)
        else:
            step = self._count_step()
            quad = x.square().mean(dims)
            if step <= self.warmup_iters:
                z = x * torch.rsqrt(quad + self.eps).view(shape)
            else:
                z = _PowerScale.apply(x, self.running_phi.clone(), self.running_grad_nu, self.alpha_bkw, self.eps, dims, shape)
            with torch.no_grad():
                self.running_phi.lerp_(quad.detach().to(self.running_phi.dtype), 1.0 - self.alpha_fwd)
        if self.weight is not None:
            z = z * self.weight.view(shape) + self.bias.view(shape)
        return z

    def extra_repr(self) -> str:
        return f"{self.num_features}, layout={self.layout!r}, alpha_fwd={self.alpha_fwd}, alpha_bkw={self.alpha_bkw}, warmup_iters={self.warmup_iters}, eps={self.eps}"
