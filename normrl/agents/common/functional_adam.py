"""Adam (Kingma & Ba 2015, arXiv 1412.6980) and global gradient-norm clipping as pure
tensor functions, for the agents' compiled updates (``compile=True``).

The compiled update differentiates a loss with ``torch.func.grad`` and applies these
functions inside one graph instead of calling ``loss.backward()``,
``clip_grad_norm_`` and ``optimizer.step()`` (three graphs and Python in between). They
follow torch's formulas (``torch.optim.Adam``/``AdamW`` with ``amsgrad=False``, as its
fused kernel computes them; ``torch.nn.utils.clip_grad_norm_``), and read and write the
optimizer's own state tensors (``step``, ``exp_avg``, ``exp_avg_sq``), so checkpoints,
``optimizer.state_dict()`` and an eager continuation see exactly what an eager step
would have left, up to float rounding (the compiled graph rounds the bias corrections in
float32 and fuses operations).
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class AdamSettings(NamedTuple):
    """The hyperparameters of one Adam param group that the functional step needs."""

    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    decoupled: bool  # AdamW's decay of the weights instead of L2 on the gradient


def adam_settings(optimizer: torch.optim.Optimizer) -> AdamSettings:
    """The settings of ``optimizer`` (a ``torch.optim.Adam``/``AdamW`` with one param
    group), or ValueError naming what a compiled update cannot reproduce."""
    from normrl.normalization.projected_optimizer import unwrap_optimizer

    inner = unwrap_optimizer(optimizer)
    if type(inner) not in (torch.optim.Adam, torch.optim.AdamW):
        raise ValueError(f"compile=True needs torch.optim.Adam or AdamW as the optimizer, got {type(inner).__name__}; "
                         "use compile=False for other optimizers")
    if len(inner.param_groups) != 1:
        raise ValueError(f"compile=True needs one optimizer param group, got {len(inner.param_groups)}")
    group = inner.param_groups[0]
    for flag in ("amsgrad", "maximize", "differentiable"):
        if group.get(flag, False):
            raise ValueError(f"compile=True does not support Adam with {flag}=True; use compile=False")
    if isinstance(group["lr"], torch.Tensor) or isinstance(group["betas"][0], torch.Tensor):
        raise ValueError("compile=True needs float lr and betas in the optimizer (the compiled update passes the LR itself)")
    decoupled = type(inner) is torch.optim.AdamW or bool(group.get("decoupled_weight_decay", False))
    return AdamSettings(float(group["betas"][0]), float(group["betas"][1]), float(group["eps"]),
                        float(group["weight_decay"]), decoupled)


def adam_state(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> tuple[list, list, list]:
    """``(exp_avgs, exp_avg_sqs, steps)`` of ``params`` in ``optimizer.state``, created the
    way ``torch.optim.Adam`` creates them at its first step when missing (zeros; ``step``
    a float32 0-d tensor on the parameter's device for fused/capturable Adam, else on
    the CPU), so a checkpoint of a compiled run loads into an eager one and back."""
    group = optimizer.param_groups[0]
    on_device = bool(group.get("fused") or group.get("capturable"))
    exp_avgs, exp_avg_sqs, steps = [], [], []
    for p in params:
        state = optimizer.state[p]
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device if on_device else "cpu")
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        exp_avgs.append(state["exp_avg"])
        exp_avg_sqs.append(state["exp_avg_sq"])
        steps.append(state["step"])
    return exp_avgs, exp_avg_sqs, steps


def clip_by_global_norm(grads: list[torch.Tensor], max_norm: float, return_norm: bool = False):
    """``torch.nn.utils.clip_grad_norm_``'s result as new tensors: every gradient times
    ``min(1, max_norm / (‖all gradients‖₂ + 1e-6))``; ``max_norm <= 0`` returns them as is.
    ``return_norm``: return ``(gradients, ‖all gradients‖₂)`` (the norm before clipping,
    what ``clip_grad_norm_`` returns; needs ``max_norm > 0``)."""
    if max_norm <= 0:
        if return_norm:
            raise ValueError("clip_by_global_norm: return_norm needs max_norm > 0")
        return grads
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    clipped = [g * coef for g in grads]
    return (clipped, total) if return_norm else clipped


def adam_step(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
              exp_avg_sqs: list[torch.Tensor], step: torch.Tensor, lr: torch.Tensor, s: AdamSettings):
    """One Adam step as new tensors: ``(params, exp_avgs, exp_avg_sqs)``. ``step`` is
    the step count *after* this step (a float 0-d tensor, so no value is baked into a
    compiled graph) and ``lr`` a 0-d tensor."""
    bias1 = 1 - s.beta1 ** step
    bias2_sqrt = torch.sqrt(1 - s.beta2 ** step)
    step_size = lr / bias1
    new_p, new_m, new_v = [], [], []
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        if s.weight_decay != 0:
            if s.decoupled:
                p = p * (1 - lr * s.weight_decay)
            else:
                g = g + s.weight_decay * p
        m = torch.lerp(m, g, 1 - s.beta1)
        v = v * s.beta2 + (1 - s.beta2) * g * g
        denom = v.sqrt() / bias2_sqrt + s.eps
        new_p.append(p - step_size * m / denom)
        new_m.append(m)
        new_v.append(v)
    return new_p, new_m, new_v
