"""Optimizer-state reset at task switches.

Adam's moments carry the previous task's gradient statistics into the next one (a
stale second moment damps the first updates on the new task, a stale first moment
pushes in the old direction). Resetting the per-parameter state at a task switch
(moments and step counts, so bias correction starts over) is the usual remedy in
continual RL (e.g. Asadi et al. 2023, "Resetting the Optimizer in Deep RL",
arXiv 2306.17833). Works through :class:`~normrl.normalization.ProjectedOptimizer`
(whose ``state`` is the inner optimizer's) and never changes learning rates or
parameters.
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import torch
import torch.nn as nn
from torch.optim import Optimizer

__all__ = ["reset_optimizer_state"]


def reset_optimizer_state(optimizer: Optimizer, params: Optional[Union[nn.Module, Iterable[torch.Tensor]]] = None) -> int:
    """Clear the per-parameter state of ``optimizer`` (Adam moments, step counts,
    momentum buffers) and return how many parameters had state cleared.

    Args:
        optimizer: any ``torch.optim.Optimizer`` (a ProjectedOptimizer included).
        params: only these parameters (an iterable of tensors, or a module meaning its
            parameters) [None: every parameter of the optimizer].

    Raises:
        ValueError: if a given parameter is not one the optimizer updates.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    owned = [p for group in optimizer.param_groups for p in group["params"]]
    if params is None:
        targets = owned
    else:
        targets = list(params.parameters()) if isinstance(params, nn.Module) else list(params)
        owned_ids = {id(p) for p in owned}
        for i, p in enumerate(targets):
            if not isinstance(p, torch.Tensor) or id(p) not in owned_ids:
                raise ValueError(f"params[{i}] is not a parameter updated by this optimizer")
    state = optimizer.state
    cleared = 0
    for p in targets:
        if p in state and state[p]:
            cleared += 1
        state.pop(p, None)
    return cleared
