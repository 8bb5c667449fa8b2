"""Keep the optimizer and the NaP projector bound to a network whose parameter set changed.

A structural intervention (plasticity injection) adds parameters to the network. An
optimizer built over ``model.parameters()`` before the change never sees them, so
they never train: exactly Plasticine's defect (its optimizer is built once, in
``plasticine/c51_atari_plasticine.py``, and neither its injected head nor its reset
layers are ever added). :func:`rebind_optimizer` fixes the optimizer in place:

* parameters no longer in the model, and frozen ones (``requires_grad=False``: an
  injected head's old part), are dropped from their param groups with their optimizer
  state, so neither momentum nor coupled weight decay can move a frozen parameter;
* trainable parameters the optimizer does not have are added as **one new param
  group** with the hyperparameters of the first group (lr, betas, eps, weight decay,
  a scheduler's ``initial_lr``...). An LR scheduler built earlier keeps working: it
  reads ``param_groups`` on every step, and the new group carries the keys it reads;
  ``LambdaLR``-style schedulers that hold one lambda per group must be rebuilt;
* frozen parameters are never added.

When the optimizer is a :class:`~normrl.normalization.ProjectedOptimizer` its NaP
projector is rebuilt over the new structure (:func:`rebind_projector`): the layers it
projected keep their recorded target norms; new trainable layers that the projector's
rule selects (directly followed by a normalization layer) get their current norm as
target; frozen layers are no longer projected (their norms cannot drift).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from torch.optim import Optimizer

from normrl.normalization.nap import NaPProjector, _is_layer, _ordered_modules, is_normalization

__all__ = ["rebind_optimizer", "rebind_projector", "optimizer_params"]


def optimizer_params(optimizer: Optimizer) -> list[torch.Tensor]:
    """Every parameter of every param group, in group order."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def rebind_optimizer(optimizer: Optimizer, model: nn.Module) -> dict[str, int]:
    """Make ``optimizer`` update exactly the trainable parameters of ``model`` (see the
    module docstring); rebuild a ProjectedOptimizer's projector. Returns
    ``{"added": n, "removed": m}`` (parameters added to / dropped from the optimizer).
    Groups emptied by the removal stay (with no parameters) so group indices are stable.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    before = optimizer_params(optimizer)
    before_ids = {id(p) for p in before}
    model_params = list(model.parameters())
    model_ids = {id(p) for p in model_params if p.requires_grad}
    removed = 0
    for group in optimizer.param_groups:
        kept = [p for p in group["params"] if id(p) in model_ids]
        for p in group["params"]:
            if id(p) not in model_ids:
                optimizer.state.pop(p, None)
                removed += 1
        group["params"] = kept
    new = [p for p in model_params if p.requires_grad and id(p) not in before_ids]
    if new:
        template = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
        optimizer.add_param_group({"params": new, **template})
    projector = getattr(optimizer, "projector", None)
    if isinstance(projector, NaPProjector) and (new or removed):
        optimizer.projector = rebind_projector(projector, model, optimizer, previous_params=before_ids)
    return {"added": len(new), "removed": removed}


def rebind_projector(
    projector: NaPProjector,
    model: nn.Module,
    optimizer: Optional[Optimizer] = None,
    previous_params: Optional[set] = None,
) -> NaPProjector:
    """A new :class:`NaPProjector` over ``model``'s current structure.

    It projects (a) every layer ``projector`` projected that is still in the model and
    trainable, with its recorded target norm, and (b) every *new* trainable layer that
    is directly followed by a normalization layer (NaP's default rule), with its current
    norm as target. A layer is new when its weight is not in ``previous_params`` (ids
    of the parameters before the change; default: ``projector``'s own weights). Norm
    layers follow the same rule (recorded joint norms kept; new ones take their current
    joint norm); norm layers the old projector left out are still left out. Options
    (``per_row``, ``norm_params``, ``output``, ``output_rate``) are kept; an output layer
    the old projector held keeps its recorded target, a new one takes its current norm;
    restricted to ``optimizer``'s parameters when given.
    """
    old_targets = {id(w): t for w, t in zip(projector._weights, projector._weight_norms)}
    old_output_targets = {id(w): t for w, t in zip(projector._output_weights, projector._output_norms)}
    old_norm_groups = {}
    offset = 0
    for size, target in zip(projector._group_sizes, projector._norm_param_norms):
        group = projector._norm_params[offset : offset + size]
        old_norm_groups[tuple(id(p) for p in group)] = target
        offset += size
    if previous_params is None:
        previous_params = set(old_targets)
    old_norm_param_ids = {id(p) for p in projector._norm_params}

    ordered = _ordered_modules(model)
    include, exclude = [], []
    for i, (name, module) in enumerate(ordered):
        if not _is_layer(module) or not module.weight.requires_grad:
            continue
        nxt = ordered[i + 1][1] if i + 1 < len(ordered) else None
        is_new = id(module.weight) not in previous_params
        if id(module.weight) in old_targets or (is_new and nxt is not None and is_normalization(nxt)):
            include.append(module)
            if nxt is not None and is_normalization(nxt) and not is_new:
                affine = [p for p in (getattr(nxt, "weight", None), getattr(nxt, "bias", None)) if isinstance(p, nn.Parameter)]
                if affine and not any(id(p) in old_norm_param_ids for p in affine):
                    exclude.append(nxt)
    if not include:
        raise ValueError("after the structural change no trainable layer is left for the NaP projector to project")
    params = optimizer_params(optimizer) if optimizer is not None else None
    new = NaPProjector(
        model, per_row=projector.per_row, norm_params=projector.norm_params, include=include, exclude=exclude or None, parameters=params,
        output=projector.output, output_rate=projector.output_rate,
    )
    with torch.no_grad():
        for w, dst in zip(new._weights, new._weight_norms):
            src = old_targets.get(id(w))
            if src is not None:
                dst.copy_(src)
        for w, dst in zip(new._output_weights, new._output_norms):
            src = old_output_targets.get(id(w))
            if src is not None and src.shape == dst.shape:
                dst.copy_(src)
        offset = 0
        for size, dst in zip(new._group_sizes, new._norm_param_norms):
            key = tuple(id(p) for p in new._norm_params[offset : offset + size])
            offset += size
            if key in old_norm_groups:
                dst.copy_(old_norm_groups[key])
    return new
