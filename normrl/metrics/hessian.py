"""The top eigenvalue of the loss Hessian (sharpness), by power iteration.

Sharpness is one of the plasticity diagnostics of the source papers (e.g. Lyle et al.
2023, "Understanding Plasticity in Neural Networks", arXiv 2303.01486, relate loss of
plasticity to the curvature of the loss landscape). It is computed without forming the
Hessian: each power-iteration step is one Hessian-vector product ``H v``, the gradient
of ``⟨∇L, v⟩`` (double backward), so the cost is about two backward passes per
iteration on the given batch. Opt-in (it costs ``iters`` extra backward passes).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch

__all__ = ["hessian_top_eigenvalue"]


def hessian_top_eigenvalue(
    loss_fn: Callable[[], torch.Tensor],
    params: Iterable[torch.Tensor],
    iters: int = 20,
    generator: Optional[torch.Generator] = None,
    tol: Optional[float] = None,
) -> torch.Tensor:
    """Largest-magnitude eigenvalue of the Hessian of ``loss_fn()`` w.r.t. ``params``.

    Power iteration: ``v ← H v / ‖H v‖`` from a Gaussian start, ``iters`` times; the
    result is the Rayleigh quotient ``vᵀ H v`` of the last ``v`` (its sign kept: for a
    loss at a saddle the dominant eigenvalue may be negative). Convergence is geometric
    in ``|λ₂/λ₁|``.

    Args:
        loss_fn: computes the scalar loss (on a fixed batch) with autograd enabled; called
            once.
        params: the tensors to differentiate against (those with ``requires_grad``).
        iters: power-iteration steps [20].
        generator: CPU generator for the start vector [None: a generator seeded 0, so
            the global RNG is never touched].
        tol: stop early once the estimate changes by less than ``tol`` relative to it
            (one host sync per iteration) [None: run all ``iters``].

    Returns:
        A 0-d tensor (detached, on the parameters' device).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("hessian_top_eigenvalue needs at least one parameter with requires_grad=True")
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    loss = loss_fn()
    if loss.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn(p.shape, generator=generator, dtype=torch.float32).to(device=p.device, dtype=p.dtype) for p in params]
    norm = torch.sqrt(sum((x * x).sum() for x in v))
    v = [x / norm for x in v]
    eig = torch.zeros((), device=params[0].device)
    for _ in range(iters):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        new_eig = sum((h * x).sum() for h, x in zip(hv, v)).detach()
        norm = torch.sqrt(sum((h * h).sum() for h in hv)).detach()
        if norm == 0:
            return torch.zeros((), device=params[0].device)
        v = [h.detach() / norm for h in hv]
        converged = tol is not None and abs(float(new_eig - eig)) <= tol * abs(float(new_eig))
        eig = new_eig
        if converged:
            break
    return eig
