"""Normalize-and-Project (NaP): Lyle et al. 2024, "Normalization and effective
learning rates in reinforcement learning", arXiv 2407.01800.

With a normalization layer after a linear map, the map is scale-invariant:
``Norm(c·W x) = Norm(W x)`` for every ``c > 0`` (once the bias feeding the norm is
removed). The gradient of a scale-invariant weight is orthogonal to the weight, so
every update grows ``‖W‖`` and the *effective* learning rate, roughly
``lr / ‖W‖²`` for SGD and ``lr / ‖W‖`` for Adam, decays on its own. In a
continual/RL setting that hidden decay ends plasticity. NaP makes the schedule
explicit: (1) insert a norm before every hidden nonlinearity and drop the feeding
layer's bias (:func:`apply_nap`), (2) after each optimizer step rescale every hidden
weight back to its norm at initialization, ``W ← ‖W₀‖·W/‖W‖``
(:class:`NaPProjector`). The function the network computes is unchanged by the
projection; only the parameterization's drift is removed.

Exact variant implemented (defaults in brackets):

* norm inserted: any registered norm [``"layernorm"``]; conv layers get the
  channels-first variant (``layout="nchw"``);
* projection granularity: whole tensor [``per_row=False``], or each output row /
  conv filter (``per_row=True``);
* norm-layer gain ``γ`` and offset ``β``: projected jointly, the concatenated vector
  ``(γ, β)`` of each norm layer rescaled to its initial joint norm
  [``norm_params="joint"``], or left free (``"free"``). ``γ`` and ``β`` are not
  scale-invariant, so under Adam their norm can grow and, like any other weight, their
  relative update size then decays; projecting them separately is impossible because
  ``β`` starts at zero, so the pair is projected together, which still lets mass move
  between gain and offset. (The paper is reported to discuss joint normalization or
  regularization of the pair; which one its experiments use was not confirmed.);
* output layer(s), i.e. every ``Linear``/``Conv`` not followed by a normalization:
  weight rescaled to its initial norm after every projection, bias free
  [``output="project"``]; or each row to its own initial norm (``"project_rows"``),
  only the excess over the initial norm shrunk by ``output_rate`` per projection
  (``"relax"``), or left alone (``"free"``, what the paper is reported to do). This is
  normrl's choice, not a symmetry: the output layer is not scale-invariant, so its norm
  is the scale of the outputs. Under NaP the last hidden features have a bounded scale,
  so a free head is the one place where parameter norm can keep growing; on continual
  random-label memorization (docs/results/nap_output_layer.md) its growth (3.6 → 11.6
  over 30 tasks) cost a third of the accuracy, and projecting it kept plasticity. The
  price: with a projected head the output range is bounded (about ``‖W₀_row‖·‖h‖``
  around the free bias), so regression or value heads with large targets underfit —
  use ``output="free"`` (or ``exclude=`` that head) for them, or scale the targets;
  and a single task trained for long loses the implicit learning-rate decay that the
  head's growth gives it (30x a task's budget at constant Adam LR: worse end point in
  2 of 3 seeds) — use an LR schedule, or ``output="free"``/``"relax"`` there;
* the optimizer state (Adam moments) is never touched.

Peer defect avoided (Plasticine): projecting without an inserted normalization (the
projector refuses layers that still have a bias or are not followed by a norm),
projecting output heads *as if* they were scale-invariant hidden layers (here it is a
separate, documented option with its own consequences), and projecting norm gains as if
they were matrices.
"""
from __future__ import annotations

import fnmatch
from collections import OrderedDict
from typing import Iterable, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.instancenorm import _InstanceNorm

from normrl.normalization.registry import NormSpec, create_norm_layer
from normrl.utils.activations import ACTIVATION_TYPES

__all__ = ["apply_nap", "NaPProjector", "is_normalization"]


# Registered "norms" that do not make the preceding layer scale-invariant.
_NOT_NORMALIZING = frozenset({"none", "identity", "dyt", "selu"})
_TORCH_NORMS = (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm, _BatchNorm, _InstanceNorm)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_TINY = 1e-12

ModuleSelector = Union[str, nn.Module]


def is_normalization(module: nn.Module) -> bool:
    """True if ``module`` normalizes its input so that a linear map feeding it is
    scale-invariant: torch's LayerNorm/RMSNorm/GroupNorm/BatchNorm/InstanceNorm and
    every registered norm except the non-normalizing ones (``none``, ``dyt``,
    ``selu``). A class can decide for itself with a ``scale_invariant`` attribute."""
    declared = getattr(module, "scale_invariant", None)
    if declared is not None:
        return bool(declared)
    if isinstance(module, _TORCH_NORMS):
        return True
    name = getattr(type(module), "norm_name", None)
    return name is not None and name not in _NOT_NORMALIZING


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, _ConvNd))


def _out_features(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _drop_bias(layer: nn.Module) -> bool:
    if layer.bias is None:
        return False
    layer.bias = None  # registered parameter becomes None; forward handles bias=None
    return True


# ----------------------------------------------------------------------------- apply_nap


def _flatten_chain(seq: nn.Sequential, out: list) -> None:
    """Leaf slots ``(parent, key, module)`` of a Sequential, nested Sequentials inlined."""
    for key, module in seq._modules.items():
        if isinstance(module, nn.Sequential):
            _flatten_chain(module, out)
        else:
            out.append((seq, key, module))


def _top_level_chains(module: nn.Module, out: list, opaque: list) -> None:
    if isinstance(module, nn.Sequential):
        out.append(module)
        slots: list = []
        _flatten_chain(module, slots)
        # Custom blocks inside a chain are opaque to it; their own Sequentials still count.
        for _, _, m in slots:
            if len(m._modules) and not is_normalization(m):
                opaque.append(m)
        return
    for child in module.children():
        _top_level_chains(child, out, opaque)


def _insert_after(parent: nn.Sequential, key: str, new: nn.Module) -> None:
    items = list(parent._modules.items())
    numeric = all(k.isdigit() for k, _ in items)
    rebuilt: "OrderedDict[str, nn.Module]" = OrderedDict()
    for k, m in items:
        rebuilt[k] = m
        if k == key:
            rebuilt[f"{k}_norm"] = new
    if numeric:
        rebuilt = OrderedDict((str(i), m) for i, m in enumerate(rebuilt.values()))
    parent._modules = rebuilt


def apply_nap(model: nn.Module, norm: NormSpec = "layernorm", *, activations: Sequence[type] = (), **norm_kwargs) -> nn.Module:
    """Turn ``model`` into its Normalize-and-Project form, in place, and return it.

    Scans every ``nn.Sequential`` of the model (nested Sequentials are read as one
    chain, so ``Sequential(Sequential(Linear, ReLU), Linear)`` works; layers wired in a
    custom ``forward`` are invisible and left alone). In each chain:

    * ``Linear``/``Conv2d`` directly followed by a nonlinearity (a module of
      :data:`~normrl.utils.activations.ACTIVATION_TYPES` or ``activations``) is a *hidden* layer: a norm built by
      ``create_norm_layer(norm, out_features, **norm_kwargs)`` is inserted between them
      (``layout="nchw"`` for convolutions) and the layer's bias is removed;
    * ``Linear``/``Conv2d`` already followed by a normalization layer keeps that norm
      and only loses its bias (a bias breaks the scale-invariance; the norm's offset
      takes over its role);
    * every other layer (the output layer, a Linear feeding a Flatten…) is untouched.

    Weights are kept (same ``Parameter`` objects), so call it before building the
    optimizer. Inserted norms are created on the layer's device and dtype. Numbered
    Sequentials are renumbered; named ones get ``<name>_norm`` entries.

    Args:
        model: the network (an ``nn.Sequential`` or any module holding Sequentials).
        norm: registered norm name, class or factory [``"layernorm"``; ``"rmsnorm"``
            is the other variant the paper mentions].
        activations: extra module types to treat as nonlinearities.
        **norm_kwargs: forwarded to every created norm.

    Raises:
        ValueError: when no hidden layer is found (nothing to normalize: the model has
            no ``Sequential`` with a layer followed by a nonlinearity), or a hidden
            layer is a ``Conv1d``/``Conv3d`` (only ``Linear`` and ``Conv2d`` have norm
            layouts).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"apply_nap expects an nn.Module, got {type(model).__name__}")
    acts = ACTIVATION_TYPES + tuple(activations)
    chains: list = []
    opaque: list = []
    _top_level_chains(model, chains, opaque)
    while opaque:  # custom blocks inside chains may hold Sequentials of their own
        block = opaque.pop()
        for child in block.children():
            _top_level_chains(child, chains, opaque)

    plan = []  # (parent, key, layer, insert_norm)
    for chain in chains:
        slots: list = []
        _flatten_chain(chain, slots)
        for i, (parent, key, module) in enumerate(slots):
            if not _is_layer(module):
                continue
            nxt = slots[i + 1][2] if i + 1 < len(slots) else None
            if nxt is not None and is_normalization(nxt):
                plan.append((parent, key, module, False))
            elif nxt is not None and isinstance(nxt, acts):
                if not isinstance(module, (nn.Linear, nn.Conv2d)):
                    raise ValueError(
                        f"apply_nap supports Linear and Conv2d hidden layers; got {type(module).__name__} "
                        "followed by a nonlinearity"
                    )
                plan.append((parent, key, module, True))
    if not plan:
        raise ValueError(
            "apply_nap found no hidden layer: it needs nn.Sequential chains where a Linear/Conv2d is "
            "followed by a nonlinearity module (e.g. nn.ReLU) or a normalization layer; layers called "
            "in a custom forward() cannot be rewired (build the network with norm='nap' instead)"
        )
    # Insert from the back so earlier keys stay valid within each parent.
    for parent, key, layer, insert in reversed(plan):
        if insert:
            kw = dict(norm_kwargs)
            if isinstance(layer, nn.Conv2d):
                kw.setdefault("layout", "nchw")
            new = create_norm_layer(norm, _out_features(layer), **kw)
            new.to(device=layer.weight.device, dtype=layer.weight.dtype)
            _insert_after(parent, key, new)
        _drop_bias(layer)
    return model


# ----------------------------------------------------------------------------- projector

#: Choices of :class:`NaPProjector`'s ``output`` option (what happens to the weights of
#: layers not followed by a normalization, i.e. the output layer).
OUTPUT_CHOICES: tuple[str, ...] = ("free", "project", "project_rows", "relax")
#: Default ``output``: keeps plasticity on continual classification; see
#: docs/results/nap_output_layer.md for the evidence and the regression caveat.
OUTPUT_DEFAULT = "project"
#: Default ``output_rate`` of ``output="relax"`` (fraction of the excess norm removed per
#: projection).
OUTPUT_RATE_DEFAULT = 1e-4


def _ordered_modules(model: nn.Module) -> list:
    """``(name, module)`` in ``model.modules()`` order, pure containers and the insides
    of norm layers skipped, custom blocks with children skipped."""
    out = []
    skip_prefixes: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        if is_normalization(module):
            out.append((name, module))
            if module._modules:
                skip_prefixes.append(name + ".")
            continue
        if isinstance(module, _CONTAINERS) or module._modules:
            continue
        out.append((name, module))
    return out


def _affine_params(norm: nn.Module) -> list:
    return [p for p in (getattr(norm, "weight", None), getattr(norm, "bias", None)) if isinstance(p, nn.Parameter)]


def _matches(name: str, module: nn.Module, selectors: Iterable[ModuleSelector]) -> bool:
    for sel in selectors:
        if isinstance(sel, nn.Module):
            if sel is module:
                return True
        elif fnmatch.fnmatchcase(name, sel):
            return True
    return False


def _check_selectors(selectors, named: dict, what: str) -> list:
    if selectors is None:
        return []
    if isinstance(selectors, (str, nn.Module)):
        selectors = [selectors]
    selectors = list(selectors)
    modules = set(map(id, named.values()))
    for sel in selectors:
        if isinstance(sel, nn.Module):
            if id(sel) not in modules:
                raise ValueError(f"{what}: module {type(sel).__name__} is not part of the model")
        elif isinstance(sel, str):
            if not any(fnmatch.fnmatchcase(n, sel) for n in named):
                raise ValueError(f"{what}: pattern {sel!r} matches no module; module names: {', '.join(n for n in named if n)}")
        else:
            raise TypeError(f"{what} entries must be modules or name patterns, got {type(sel).__name__}")
    return selectors


class NaPProjector:
    """Records the initial norms of a NaP network's weights and restores them.

    Hidden layers (default rule): every ``Linear``/``Conv`` layer that is directly
    followed by a normalization layer (:func:`is_normalization`) in ``model.modules()``
    order (containers skipped); each is rescaled to its initial norm, which leaves the
    function unchanged. ``include`` replaces the rule by an explicit list (modules or
    ``fnmatch`` patterns over ``model.named_modules()`` names), e.g. for custom forward
    code; ``exclude`` removes layers or norm layers from every selection.
    ``parameters`` restricts everything to the given parameters (an optimizer's, so a
    target network is never touched).

    Output layers: every other ``Linear``/``Conv`` layer that is not followed by a
    normalization (in :class:`~normrl.networks.MLP`, ``NatureCNN`` or an
    :func:`apply_nap` chain: exactly the heads; in a network with an unnormalized inner
    layer, that layer too — ``exclude`` it). The ``output`` option decides what happens
    to their weights (their bias is always free). This changes the function — the
    output layer is not scale-invariant — and is a choice, not a symmetry:

    * ``"project"`` [default]: ``W ← ‖W₀‖·W/‖W‖`` for the whole weight tensor, like a
      hidden layer. Keeps plasticity on continual classification, where a free head
      keeps growing (docs/results/nap_output_layer.md), but bounds the output range:
      regression/value heads whose targets exceed a few units underfit, and a long
      single task at a constant LR loses the head's implicit LR decay (same page);
    * ``"project_rows"``: each output row (class, action) to its own initial norm;
    * ``"relax"``: when ``‖W‖ > ‖W₀‖``, ``‖W‖ ← ‖W₀‖ + (1 − output_rate)(‖W‖ − ‖W₀‖)``
      (direction kept; at or below ``‖W₀‖`` nothing happens): a soft bound whose
      largest reachable norm is about ``‖W₀‖ + g/output_rate`` for a head that the
      optimizer grows by ``g`` per step; ``output_rate=1`` is ``"project"``;
    * ``"free"``: left alone (the paper's variant as reported; right for regression
      and value heads with unscaled targets).

    For each projected layer the norm layer directly after it is the *norm layer* whose
    gain/offset ``norm_params`` governs.

    The rule reads registration order, not data flow. It is right for chains (MLPs,
    CNNs, anything :func:`apply_nap` produced); in residual or branching networks a
    layer registered just before a norm may not feed it (e.g. a Pre-LN block's last
    Linear followed by the next block's norm). Such a layer usually keeps its bias and
    is then refused with an error; otherwise pass ``include=`` explicitly.

    Args:
        model: the network, after :func:`apply_nap` (or built with ``norm="nap"``).
        per_row: project each output row / conv filter to its own initial norm
            [False: the whole tensor].
        norm_params: ``"joint"`` [default: each norm layer's ``(γ, β)`` vector
            rescaled to its initial joint norm] or ``"free"``.
        exclude: modules or name patterns never projected [None].
        include: modules or name patterns projected as hidden layers instead of the
            default rule [None].
        parameters: only parameters in this iterable are projected [None: all].
        output: ``"project"`` [default], ``"project_rows"``, ``"relax"`` or ``"free"``
            (:data:`OUTPUT_CHOICES`), see above.
        output_rate: fraction of the excess norm ``output="relax"`` removes per
            projection, in (0, 1] [``1e-4``].

    The initial norms are measured at construction: build the projector right after
    initialization (a :class:`~normrl.normalization.ProjectedOptimizer` does). Call
    :meth:`project` after every optimizer step. Raises ``ValueError`` when a selected
    hidden layer still has a bias (it would not be scale-invariant: run
    :func:`apply_nap`), when no hidden layer is selected, or on an unknown ``output``
    / ``norm_params``. A model without an output layer (a torso) is fine: there is
    nothing more to project.
    """

    def __init__(
        self,
        model: nn.Module,
        per_row: bool = False,
        norm_params: str = "joint",
        exclude: Optional[Sequence[ModuleSelector]] = None,
        include: Optional[Sequence[ModuleSelector]] = None,
        parameters: Optional[Iterable[torch.Tensor]] = None,
        output: str = OUTPUT_DEFAULT,
        output_rate: float = OUTPUT_RATE_DEFAULT,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"NaPProjector expects an nn.Module, got {type(model).__name__}")
        if norm_params not in ("joint", "free"):
            raise ValueError(f"norm_params must be one of ('joint', 'free'), got {norm_params!r}")
        if output not in OUTPUT_CHOICES:
            raise ValueError(f"output must be one of {OUTPUT_CHOICES}, got {output!r}")
        if not isinstance(output_rate, (int, float)) or isinstance(output_rate, bool) or not 0.0 < output_rate <= 1.0:
            raise ValueError(f"output_rate must be a float in (0, 1], got {output_rate!r}")
        self.per_row = bool(per_row)
        self.norm_params = norm_params
        self.output = output
        self.output_rate = float(output_rate)
        named = dict(model.named_modules())
        include = _check_selectors(include, named, "include")
        exclude = _check_selectors(exclude, named, "exclude")
        allowed = None if parameters is None else {id(p) for p in parameters}

        ordered = _ordered_modules(model)
        layers: list = []
        norms: list = []
        outputs: list = []
        for i, (name, module) in enumerate(ordered):
            if not _is_layer(module):
                continue
            nxt = ordered[i + 1] if i + 1 < len(ordered) else None
            followed_by_norm = nxt is not None and is_normalization(nxt[1])
            chosen = _matches(name, module, include) if include else followed_by_norm
            if _matches(name, module, exclude) or (allowed is not None and id(module.weight) not in allowed):
                continue
            if not chosen:
                if not followed_by_norm and output != "free":
                    outputs.append((name, module))
                continue
            if module.bias is not None and not include:
                raise ValueError(
                    f"layer {name!r} is registered just before a normalization layer but has a bias, so it is "
                    "not scale-invariant and projecting it would change the function: run apply_nap(model) or "
                    "build it with bias=False; in a residual/branching network, where registration order is not "
                    "data flow, pass include=[...] with the layers that really feed a norm"
                )
            layers.append((name, module))
            if followed_by_norm and not _matches(nxt[0], nxt[1], exclude):
                params = [p for p in _affine_params(nxt[1]) if allowed is None or id(p) in allowed]
                if params:
                    norms.append((nxt[0], params))
        if not layers:
            raise ValueError(
                "NaPProjector selected no layer: no Linear/Conv is directly followed by a normalization "
                "layer (run apply_nap(model) first, or pass include=[...])"
            )
        self.layer_names = [n for n, _ in layers]
        joint = norm_params == "joint"
        self.norm_layer_names = [n for n, _ in norms] if joint else []
        self._weights = [m.weight for _, m in layers]
        self._row_shapes = [(-1,) + (1,) * (w.dim() - 1) for w in self._weights]
        self._norm_params = [p for _, ps in norms for p in ps] if joint else []
        self._group_sizes = [len(ps) for _, ps in norms] if joint else []
        devices = {t.device for t in self._weights + self._norm_params}
        self._fused = len(devices) == 1 and len({w.dtype for w in self._weights}) <= 1 and len({p.dtype for p in self._norm_params}) <= 1
        self._group_index = None
        if self._norm_params:
            sizes = torch.tensor(self._group_sizes, dtype=torch.long)
            self._group_index = torch.repeat_interleave(torch.arange(len(self._group_sizes)), sizes).to(self._norm_params[0].device)
        with torch.no_grad():
            weight_norms = self._current_weight_norms()
            joint_norms = self._current_joint_norms()
        # Targets live in one tensor each (fused path); the lists are views into them,
        # so load_state_dict's in-place copies update both.
        if self._fused and not self.per_row:
            self._weight_target = torch.stack(weight_norms)
            self._weight_norms = list(self._weight_target.unbind())
        else:
            self._weight_target = None
            self._weight_norms = weight_norms
        self._joint_target = torch.stack(joint_norms) if joint_norms else None
        self._norm_param_norms = list(self._joint_target.unbind()) if joint_norms else []
        self.output_layer_names = [n for n, _ in outputs]
        self._output_weights = [m.weight for _, m in outputs]
        self._output_row_shapes = [(-1,) + (1,) * (w.dim() - 1) for w in self._output_weights]
        with torch.no_grad():
            self._output_norms = self._current_output_norms()

    # -- measurements -------------------------------------------------------------------

    def _current_weight_norms(self) -> list:
        if self.per_row:
            return [torch.linalg.vector_norm(w.detach().flatten(1), dim=1) for w in self._weights]
        return [n.detach() for n in torch._foreach_norm([w.detach() for w in self._weights])]

    def _current_joint_norms(self) -> list:
        if not self._norm_params:
            return []
        return list(self._joint_norm_vector().unbind())

    def _joint_norm_vector(self) -> torch.Tensor:
        if self._fused:
            sq = torch.stack(torch._foreach_norm([p.detach() for p in self._norm_params])).float().square()
        else:
            sq = torch.stack([torch.linalg.vector_norm(p.detach()).float().to(self._group_index.device) for p in self._norm_params]).square()
        return torch.zeros(len(self._group_sizes), device=sq.device).index_add_(0, self._group_index, sq).sqrt()

    def _current_output_norms(self) -> list:
        if self.output == "project_rows":
            return [torch.linalg.vector_norm(w.detach().flatten(1), dim=1) for w in self._output_weights]
        return [torch.linalg.vector_norm(w.detach()) for w in self._output_weights]

    def output_weight_norms(self) -> dict:
        """Current norm of every projected output layer's weight (per-row vectors with
        ``output="project_rows"``), by layer name; empty with ``output="free"``."""
        with torch.no_grad():
            return dict(zip(self.output_layer_names, self._current_output_norms()))

    def initial_output_weight_norms(self) -> dict:
        """Recorded initial norm of every projected output layer's weight, by layer name."""
        return dict(zip(self.output_layer_names, self._output_norms))

    def weight_norms(self) -> dict:
        """Current norm of every projected weight (per-row vectors with ``per_row``), by layer name."""
        with torch.no_grad():
            return dict(zip(self.layer_names, self._current_weight_norms()))

    def initial_weight_norms(self) -> dict:
        """Recorded initial norm of every projected weight, by layer name."""
        return dict(zip(self.layer_names, self._weight_norms))

    def norm_param_norms(self) -> dict:
        """Current joint ``(γ, β)`` norm of every projected norm layer, by name."""
        with torch.no_grad():
            return dict(zip(self.norm_layer_names, self._current_joint_norms()))

    # -- projection ---------------------------------------------------------------------

    @torch.no_grad()
    def project(self) -> None:
        """Rescale every selected tensor to its recorded norm, in place (no autograd,
        no optimizer-state change, no host synchronization)."""
        w = self._weights
        if self.per_row:
            current = [torch.linalg.vector_norm(t.flatten(1), dim=1) for t in w]
            scales = [(t0 / c.clamp_min(_TINY)).view(shape) for t0, c, shape in zip(self._weight_norms, current, self._row_shapes)]
            torch._foreach_mul_(w, scales)
        elif self._fused:
            current = torch.stack(torch._foreach_norm(w)).clamp_min_(_TINY)
            torch._foreach_mul_(w, list(torch.div(self._weight_target, current).unbind()))
        else:
            for t, t0 in zip(w, self._weight_norms):
                t.mul_(t0 / torch.linalg.vector_norm(t).clamp_min(_TINY))
        if self._norm_params:
            group_scale = torch.div(self._joint_target, self._joint_norm_vector().clamp_min_(_TINY))
            per_tensor = group_scale[self._group_index]
            params = self._norm_params
            if self._fused:
                torch._foreach_mul_(params, [s.to(p.dtype) for s, p in zip(per_tensor.unbind(), params)])
            else:
                for p, scale in zip(params, per_tensor.unbind()):
                    p.mul_(scale.to(p.device, p.dtype))
        for t, t0, shape in zip(self._output_weights, self._output_norms, self._output_row_shapes):
            if self.output == "project_rows":
                t.mul_((t0 / torch.linalg.vector_norm(t.flatten(1), dim=1).clamp_min(_TINY)).view(shape))
            elif self.output == "relax":
                # Only the excess over the initial norm shrinks, by output_rate per projection.
                n = torch.linalg.vector_norm(t).clamp_min(_TINY)
                t.mul_(torch.where(n > t0, (t0 + (1.0 - self.output_rate) * (n - t0)) / n, torch.ones_like(n)))
            else:
                t.mul_(t0 / torch.linalg.vector_norm(t).clamp_min(_TINY))

    __call__ = project

    # -- checkpointing ------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The configuration, the selected names and the recorded initial norms."""
        return {
            "per_row": self.per_row,
            "norm_params": self.norm_params,
            "output": self.output,
            "output_rate": self.output_rate,
            "layer_names": list(self.layer_names),
            "norm_layer_names": list(self.norm_layer_names),
            "output_layer_names": list(self.output_layer_names),
            "weight_norms": [t.clone() for t in self._weight_norms],
            "norm_param_norms": [t.clone() for t in self._norm_param_norms],
            "output_norms": [t.clone() for t in self._output_norms],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore recorded norms saved by :meth:`state_dict` (same model, same options).

        A state saved before the ``output`` option existed is read as ``output="free"``
        (what the projector did then), so it loads only into a projector built with
        ``output="free"``."""
        state = {"output": "free", "output_rate": self.output_rate, "output_layer_names": [], "output_norms": [], **state}
        keys = ["per_row", "norm_params", "output", "layer_names", "norm_layer_names", "output_layer_names"]
        for key in keys + (["output_rate"] if self.output == "relax" else []):
            if state[key] != getattr(self, key):
                raise ValueError(f"NaPProjector state mismatch on {key}: saved {state[key]!r}, current {getattr(self, key)!r}")
        mine = self._weight_norms + self._norm_param_norms + self._output_norms
        saved = state["weight_norms"] + state["norm_param_norms"] + state["output_norms"]
        for dst, src in zip(mine, saved):
            if dst.shape != src.shape:
                raise ValueError(f"NaPProjector state has a norm of shape {tuple(src.shape)}, expected {tuple(dst.shape)}")
            dst.copy_(src)

    def __repr__(self) -> str:
        return (
            f"NaPProjector(layers={self.layer_names}, norm_layers={self.norm_layer_names}, "
            f"output_layers={self.output_layer_names}, per_row={self.per_row}, "
            f"norm_params={self.norm_params!r}, output={self.output!r})"
        )
