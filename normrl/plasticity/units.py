"""The hidden units of a network, found by tracing one forward pass.

Unit-level plasticity interventions (ReDo, continual backprop) act on *hidden units*: a
unit is one output feature of a hidden ``Linear`` (one row of its weight) or one output
channel of a hidden ``Conv`` (one filter), seen after its activation. Resetting a unit
touches three places, which :func:`trace_hidden_units` finds for every hidden activation:

* the **incoming** weight layer that computes the unit's pre-activation (rows of its
  weight, entries of its bias);
* an optional **norm** layer between that layer and the activation (its per-unit gain,
  offset and statistics), e.g. NaP's ``Linear(bias=False) -> LayerNorm -> ReLU`` or a
  conv's ``GroupNorm``/``BatchNorm`` in the ``nchw`` layout;
* every **outgoing** weight layer that reads the activation (columns of its weight):
  a ``Linear`` (column ``i``), a ``Conv`` (input channel ``c``), or a ``Linear`` behind a
  ``Flatten`` of a conv feature map, where channel ``c`` of a ``(N, C, H, W)`` map is the
  column block ``[c·H·W, (c+1)·H·W)`` (``H·W`` is read from the traced shapes).

Which activations: the rule of :func:`normrl.metrics.monitor.hidden_activation_layers`
(activation modules registered between the first and the last weight layer, in
``model.named_modules()`` order), or an explicit ``layers=`` list.

How the structure is found: one forward pass of an example input (under
``torch.no_grad()``, every module in eval mode with the training flags restored after,
and the global RNG forked, so the pass changes no state), with hooks on the weight,
norm, activation, dropout, identity and flatten modules and a ``TorchFunctionMode`` that
records every functional operation run outside them. That gives the real data flow, so
a unit is traced only when it provably has exactly this shape: its activation is called
once; its input comes from one weight layer through at most one norm (and dropouts),
and no other operation reads that path; its output reaches only weight layers (through
dropouts and one ``Flatten``), and is neither returned by the model nor read by any
functional operation (a residual addition, a slice, a concatenation). Everything else
is reported in :attr:`UnitTrace.skipped` with the reason, never mis-handled: e.g. the
activations of pre-activation residual blocks, activations applied functionally
(``F.relu`` in ``ResNet18``, which has no activation module at all), shared modules,
grouped or transposed convolutions. ``ResidualMLP``'s blocks compute
``fc2(act(fc1(h)))`` inside ``x + F(x)``, so their inner units *are* traced (the residual
addition reads ``fc2``'s output, not the units).

Networks checked by the tests: :class:`~normrl.networks.MLP` (every norm, ``nap``
included; ReLU/tanh), :class:`~normrl.networks.MinAtarCNN`,
:class:`~normrl.networks.NatureCNN` (channels-last too), PPO's ``ActorCritic`` (shared or
separate actor and critic), DQN's q-network.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd
from torch.overrides import TorchFunctionMode

from normrl.metrics.monitor import ACTIVATION_TYPES, hidden_activation_layers

__all__ = ["OutgoingLayer", "HiddenLayer", "UnitTrace", "trace_hidden_units", "fresh_copy", "fresh_norm", "norm_types", "quiet_eval"]

_WEIGHT_TYPES = (nn.Linear, _ConvNd)
_PASS_TYPES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_TORCH_NORM_TYPES: tuple[type, ...] = (nn.LayerNorm, nn.GroupNorm, _NormBase) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def norm_types() -> tuple[type, ...]:
    """Module types recognized as a norm between a weight layer and its activation:
    every class of the norm registry (``normrl.normalization``) and torch's
    ``LayerNorm``, ``GroupNorm``, ``RMSNorm`` and the ``BatchNorm``/``InstanceNorm``
    family."""
    from normrl.normalization.registry import norm_entries

    classes = [e.cls for e in norm_entries() if isinstance(e.cls, type)]
    return tuple(classes) + _TORCH_NORM_TYPES


# -- the traced structure -----------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingLayer:
    """A weight layer that reads a hidden layer's units.

    Attributes:
        name: module name in the traced model.
        module: the ``nn.Linear`` or ``Conv`` module.
        block: input columns per unit: 1, or ``H·W`` for a ``Linear`` behind a
            ``Flatten`` of a ``(N, C, H, W)`` conv feature map.
    """

    name: str
    module: nn.Module
    block: int = 1

    def columns(self, units: torch.Tensor) -> torch.Tensor:
        """Indices along dim 1 of ``module.weight`` (its logical layout) holding the
        outgoing weights of ``units`` (a 1-d long tensor): ``units`` itself, or each
        unit's block ``[u·block, (u+1)·block)``."""
        if self.block == 1:
            return units
        offsets = torch.arange(self.block, device=units.device)
        return (units.unsqueeze(1) * self.block + offsets).reshape(-1)


@dataclass(frozen=True)
class HiddenLayer:
    """The units behind one hidden activation module.

    Attributes:
        name: the incoming weight layer's module name (the name used in event keys,
            ``reset_units/<name>``).
        activation_name, activation: the activation module whose output the units are.
        incoming: the weight layer computing the pre-activations (``nn.Linear``: unit =
            output feature; ``Conv``: unit = output channel).
        norm_name, norm: the norm between ``incoming`` and the activation, or None.
        outgoing: every weight layer reading the activation.
        num_units: ``out_features`` or ``out_channels`` of ``incoming``.
        channel_dim: the axis of the activation tensor holding the units: 1 for conv
            feature maps ``(N, C, *spatial)`` and for ``(N, F)``, -1 for a ``Linear`` on
            ``(N, ..., F)``.
        positions: spatial positions per unit that the outgoing layers read separately
            (``H·W`` when a ``Flatten -> Linear`` reads the map, else 1).
    """

    name: str
    activation_name: str
    activation: nn.Module
    incoming: nn.Module
    norm_name: Optional[str]
    norm: Optional[nn.Module]
    outgoing: tuple[OutgoingLayer, ...]
    num_units: int
    channel_dim: int
    positions: int = 1

    def reduce_dims(self, acts: torch.Tensor) -> tuple[int, ...]:
        """Axes of ``acts`` other than the unit axis."""
        unit_dim = self.channel_dim % acts.dim()
        return tuple(d for d in range(acts.dim()) if d != unit_dim)

    def unit_mean(self, values: torch.Tensor, per_position: bool = False) -> torch.Tensor:
        """Mean of ``values`` (shaped like the activation) per unit: shape ``(units,)``,
        or ``(units, positions)`` with ``per_position`` (positions kept apart when the
        outgoing ``Flatten -> Linear`` reads them separately; averaged otherwise), float32."""
        v = values.float()
        if per_position and self.positions > 1:
            return v.mean(0).reshape(self.num_units, self.positions)
        out = v.mean(self.reduce_dims(v))
        return out.unsqueeze(1) if per_position else out

    @property
    def incoming_params(self) -> list[torch.Tensor]:
        """The incoming layer's ``weight`` and (if any) ``bias``."""
        return [p for p in (self.incoming.weight, getattr(self.incoming, "bias", None)) if p is not None]

    def norm_unit_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` of every parameter and floating buffer of the norm with
        shape ``(units,)`` (its per-unit gain, offset and statistics); empty without a
        norm. Tensors of any other shape (a layer-wide scalar such as DyT's alpha,
        AdaB²N's per-task logits, step counters) are not per unit."""
        if self.norm is None:
            return []
        out = [(n, p) for n, p in self.norm.named_parameters() if tuple(p.shape) == (self.num_units,)]
        out += [(n, b) for n, b in self.norm.named_buffers() if b.is_floating_point() and tuple(b.shape) == (self.num_units,)]
        return out

    @torch.no_grad()
    def reinit_incoming(self, units: torch.Tensor, fresh_incoming: nn.Module) -> None:
        """Rows ``units`` of the incoming weight get ``fresh_incoming``'s rows (a freshly
        initialized copy of the layer); the incoming bias of ``units`` is set to 0."""
        w = self.incoming.weight
        w.index_copy_(0, units, fresh_incoming.weight.detach().index_select(0, units).to(dtype=w.dtype))
        bias = getattr(self.incoming, "bias", None)
        if bias is not None:
            bias.index_fill_(0, units, 0.0)

    @torch.no_grad()
    def zero_outgoing(self, units: torch.Tensor) -> None:
        """Outgoing weights of ``units`` (columns, or column blocks) set to 0 in every
        outgoing layer."""
        for out in self.outgoing:
            out.module.weight.index_fill_(1, out.columns(units), 0.0)

    @torch.no_grad()
    def reset_norm(self, units: torch.Tensor, fresh_norm: Optional[nn.Module]) -> int:
        """Per-unit norm tensors (:meth:`norm_unit_tensors`) of ``units`` set to the
        values of ``fresh_norm`` (a norm of the same type as just constructed); returns
        how many tensors were reset (0 without a norm)."""
        if self.norm is None or fresh_norm is None:
            return 0
        fresh = dict(fresh_norm.named_parameters())
        fresh.update(dict(fresh_norm.named_buffers()))
        count = 0
        for name, t in self.norm_unit_tensors():
            src = fresh.get(name)
            if src is None or src.shape != t.shape:
                continue
            t.index_copy_(0, units, src.detach().to(device=t.device, dtype=t.dtype).index_select(0, units))
            count += 1
        return count


@dataclass
class UnitTrace:
    """The result of :func:`trace_hidden_units`.

    Attributes:
        layers: the traced hidden layers, in ``model.named_modules()`` order of their
            activations.
        skipped: ``{activation module name: reason}`` for every candidate activation
            whose units could not be traced.
    """

    layers: list[HiddenLayer] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def skipped_message(self, who: str) -> str:
        """One line naming every skipped activation and why (for a warning)."""
        items = "; ".join(f"{k}: {v}" for k, v in self.skipped.items())
        return f"{who}: the units of {len(self.skipped)} activation(s) cannot be traced and are left alone ({items})"


# -- fresh initializations ----------------------------------------------------------------


def fresh_copy(layer: nn.Module, init: Optional[Callable[[nn.Module], Any]] = None) -> nn.Module:
    """A copy of ``layer`` re-initialized by its own initializer: ``init(copy)`` when
    given, else ``copy.reset_parameters()`` (PyTorch's default initialization of
    ``Linear``/``Conv``; norm layers of torch). Draws from the global RNG: call it under
    the intervention's forked RNG. ``ValueError`` when the layer has no
    ``reset_parameters`` and no ``init`` is given."""
    fresh = copy.deepcopy(layer)
    for p in fresh.parameters():
        p.grad = None
    with torch.no_grad():
        if init is not None:
            init(fresh)
        elif callable(getattr(fresh, "reset_parameters", None)):
            fresh.reset_parameters()
        else:
            raise ValueError(f"{type(layer).__name__} has no reset_parameters(); pass init=callable(layer) to re-initialize it")
    return fresh


def fresh_norm(norm: nn.Module) -> Optional[nn.Module]:
    """A norm of ``norm``'s type with its initial values, or None when none can be made.

    normrl's registered norms are rebuilt as ``type(norm)(num_features, layout=...)``
    (their contract: the feature count is the only positional argument); torch's norms
    are copied and ``reset_parameters()`` (which also resets running statistics)."""
    if isinstance(norm, _TORCH_NORM_TYPES) and not hasattr(norm, "layout"):
        fresh = copy.deepcopy(norm)
        fresh.reset_parameters()
        return fresh
    num, layout = getattr(norm, "num_features", None), getattr(norm, "layout", None)
    if not isinstance(num, int):
        return None
    try:
        fresh = type(norm)(num, layout=layout) if layout is not None else type(norm)(num)
    except (TypeError, ValueError):
        return None
    ref = next(iter(norm.parameters()), None)
    return fresh.to(ref.device) if ref is not None else fresh


# -- tracing --------------------------------------------------------------------------------

_Key = tuple[int, int]


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


@dataclass
class _Node:
    kind: str  # "module" or "op"
    name: str
    module: Optional[nn.Module]
    inputs: list[_Key]
    outputs: list[_Key]
    in_shapes: list[tuple[int, ...]]


class _Recorder(TorchFunctionMode):
    """Records module calls (through hooks) and the functional operations run between
    them (through the torch-function mode) as a data-flow graph of tensor keys."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.nodes: list[_Node] = []
        self.keep: list[torch.Tensor] = []  # keeps tensors alive so their ids stay unique
        self._pending: list[tuple[list[_Key], list[tuple[int, ...]]]] = []

    def key(self, t: torch.Tensor) -> _Key:
        self.keep.append(t)
        return (id(t), t._version)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0:
            outs = _tensors(out)
            if outs:
                ins = _tensors((args, kwargs))
                self.nodes.append(_Node("op", getattr(func, "__name__", str(func)), None, [self.key(t) for t in ins], [self.key(t) for t in outs], [tuple(t.shape) for t in ins]))
        return out

    def pre_hook(self, module, args, kwargs):
        if self.depth == 0:
            ins = _tensors((args, kwargs))
            self._pending.append(([self.key(t) for t in ins], [tuple(t.shape) for t in ins]))
        self.depth += 1

    def post_hook(self, name: str):
        def hook(module, args, kwargs, output):
            self.depth -= 1
            if self.depth == 0:
                ins, shapes = self._pending.pop()
                outs = [self.key(t) for t in _tensors(output)]
                if set(outs) <= set(ins):  # returned its input untouched (Identity, eval Dropout, NoNorm)
                    return
                self.nodes.append(_Node("module", name, module, ins, outs, shapes))
        return hook


@contextlib.contextmanager
def quiet_eval(model: nn.Module, example_input: Any = None) -> Iterator[None]:
    """Run a block with every module of ``model`` in eval mode (training flags restored
    after), under ``torch.no_grad()`` and with the global RNG forked (the CPU one and
    that of the CUDA devices of ``example_input``'s tensors): a forward pass inside
    changes no state of the model or of the training run."""
    devices = sorted({t.device.index or 0 for t in _tensors(example_input) if t.device.type == "cuda"})
    flags = {m: m.training for m in model.modules()}
    try:
        with torch.random.fork_rng(devices=list(devices)), torch.no_grad():
            model.train(False)
            yield
    finally:
        for m, mode in flags.items():
            m.training = mode


def _unit_axis_ok(norm: nn.Module, conv: bool, ndim: int) -> bool:
    """Whether ``norm`` normalizes per unit along the axis the incoming layer's units
    are on (dim 1 for conv maps, the last axis for Linear; the same axis for 2-d)."""
    layout = getattr(norm, "layout", None)
    if layout is not None:
        axis = "channel" if layout == "nchw" else "last" if layout == "nc" else None
    elif isinstance(norm, nn.LayerNorm) or (hasattr(nn, "RMSNorm") and isinstance(norm, nn.RMSNorm)):
        axis = "last" if len(norm.normalized_shape) == 1 else None
    elif isinstance(norm, (nn.GroupNorm, _NormBase)):
        axis = "channel"
    else:
        axis = None
    if axis is None:
        return False
    if ndim == 2:
        return True
    return axis == ("channel" if conv else "last")


def trace_hidden_units(
    model: nn.Module,
    example_input: Any,
    *,
    forward: Optional[Callable[[nn.Module, Any], Any]] = None,
    layers: Optional[Sequence[str]] = None,
) -> UnitTrace:
    """Trace the hidden units of ``model`` with one forward pass (see the module
    docstring for what is traced and what is skipped).

    Args:
        model: the network.
        example_input: an input batch (a tensor, or a tuple of positional arguments)
            of the form the model takes; a few rows suffice.
        forward: ``forward(model, example_input)`` running the model [None:
            ``model(example_input)``, or ``model(*example_input)`` for a tuple].
        layers: names of the activation modules to trace [None: the rule of
            :func:`~normrl.metrics.monitor.hidden_activation_layers`].

    Returns a :class:`UnitTrace` (``layers`` in module order, ``skipped`` with reasons).
    Raises ``ValueError`` for a name in ``layers`` that is not a module of ``model``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"trace_hidden_units expects an nn.Module, got {type(model).__name__}")
    named = dict(model.named_modules())
    candidates = list(hidden_activation_layers(model) if layers is None else layers)
    unknown = [n for n in candidates if n not in named]
    if unknown:
        raise ValueError(f"layers {unknown} are not modules of {type(model).__name__}")
    norms = norm_types()
    node_types = _WEIGHT_TYPES + ACTIVATION_TYPES + norms + _PASS_TYPES + (nn.Flatten,)
    rec = _Recorder()
    handles = []
    for name, m in named.items():
        if isinstance(m, node_types):
            handles.append(m.register_forward_pre_hook(rec.pre_hook, prepend=True, with_kwargs=True))
            handles.append(m.register_forward_hook(rec.post_hook(name), with_kwargs=True, always_call=True))
    try:
        with quiet_eval(model, example_input), rec:
            if forward is not None:
                output = forward(model, example_input)
            elif isinstance(example_input, tuple):
                output = model(*example_input)
            else:
                output = model(example_input)
            out_keys = {rec.key(t) for t in _tensors(output)}
    finally:
        for h in handles:
            h.remove()

    producer: dict[_Key, _Node] = {}
    consumers: dict[_Key, list[_Node]] = {}
    calls: dict[int, int] = {}
    for node in rec.nodes:
        if node.module is not None:
            calls[id(node.module)] = calls.get(id(node.module), 0) + 1
        for k in node.inputs:
            consumers.setdefault(k, []).append(node)
        for k in node.outputs:
            producer.setdefault(k, node)

    trace = UnitTrace()
    owners: dict[int, str] = {}
    for act_name in candidates:
        act = named[act_name]
        found = _trace_one(act_name, act, rec.nodes, producer, consumers, calls, out_keys, norms)
        if isinstance(found, str):
            trace.skipped[act_name] = found
            continue
        owner = owners.get(id(found.incoming))
        if owner is not None:
            trace.skipped[act_name] = f"its weight layer {found.name} already feeds {owner}"
            continue
        owners[id(found.incoming)] = act_name
        trace.layers.append(found)
    return trace


def _trace_one(act_name, act, nodes, producer, consumers, calls, out_keys, norms) -> HiddenLayer | str:
    mine = [n for n in nodes if n.module is act]
    if not mine:
        return "not called in the forward pass (or returns its input unchanged)"
    if len(mine) > 1:
        return f"called {len(mine)} times in one forward pass (a shared module)"
    node = mine[0]
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        return "takes or returns more than one tensor"

    # backwards: activation <- [dropout] <- [norm] <- [dropout] <- weight layer
    key, norm_node = node.inputs[0], None
    while True:
        src = producer.get(key)
        if src is None:
            return "its input is not computed by a module of the network"
        if len(consumers.get(key, [])) != 1 or key in out_keys:
            return f"the output of {src.name} that feeds it is also read elsewhere"
        if src.kind == "op":
            return f"its input comes from the operation {src.name}, not from a weight layer"
        mod = src.module
        if isinstance(mod, _WEIGHT_TYPES):
            incoming_node = src
            break
        if isinstance(mod, norms) or isinstance(mod, _PASS_TYPES):
            if isinstance(mod, norms):
                if norm_node is not None:
                    return f"two norm layers ({norm_node.name}, {src.name}) before it"
                norm_node = src
            if len(src.inputs) != 1:
                return f"{src.name} takes more than one tensor"
            key = src.inputs[0]
            continue
        return f"its input comes from {type(mod).__name__} {src.name}, not from a weight layer"

    inc = incoming_node.module
    if calls.get(id(inc), 0) != 1:
        return f"its weight layer {incoming_node.name} is called more than once (shared weights)"
    conv = isinstance(inc, _ConvNd)
    if conv and (inc.transposed or inc.groups != 1):
        return f"{incoming_node.name} is a grouped or transposed convolution"
    units = inc.out_channels if conv else inc.out_features
    out_shape = node.in_shapes[0]
    ndim = len(out_shape)
    channel_dim = 1 if (conv or ndim == 2) else -1
    if out_shape[channel_dim] != units:
        return f"its tensor has no axis of {units} units"
    norm = norm_node.module if norm_node is not None else None
    if norm is not None and not _unit_axis_ok(norm, conv, ndim):
        return f"the norm {norm_node.name} does not normalize along the units' axis"

    # forwards: activation -> [dropout] -> [Flatten] -> weight layers
    outgoing: list[OutgoingLayer] = []
    positions = 1
    frontier = [(node.outputs[0], channel_dim, 1, tuple(out_shape))]
    while frontier:
        key, axis, block, shape = frontier.pop()
        if key in out_keys:
            return "its output is returned by the model"
        readers = consumers.get(key, [])
        if not readers:
            return "no weight layer reads its output"
        for r in readers:
            if r.kind == "op":
                return f"its output is read by the operation {r.name}"
            mod = r.module
            if isinstance(mod, _PASS_TYPES):
                frontier.append((r.outputs[0], axis, block, shape))
            elif isinstance(mod, nn.Flatten):
                if mod.start_dim != 1 or mod.end_dim != -1 or block != 1:
                    return f"{r.name} is not a Flatten(1, -1) of the feature map"
                if len(shape) > 2:
                    if axis != 1:
                        return f"{r.name} flattens a map whose units are not on dim 1"
                    block = math.prod(shape[2:])
                    positions = block
                frontier.append((r.outputs[0], -1, block, (shape[0], math.prod(shape[1:]))))
            elif isinstance(mod, _WEIGHT_TYPES):
                if calls.get(id(mod), 0) != 1:
                    return f"its reader {r.name} is called more than once (shared weights)"
                if isinstance(mod, _ConvNd):
                    if mod.transposed or mod.groups != 1 or block != 1 or axis != 1 or mod.in_channels != units:
                        return f"its reader {r.name} is not a plain convolution over its channels"
                elif len(shape) != 2 and axis != -1:
                    return f"its reader {r.name} is a Linear over a non-unit axis"
                elif mod.in_features != units * block:
                    return f"its reader {r.name} has {mod.in_features} inputs, not {units}x{block}"
                outgoing.append(OutgoingLayer(r.name, mod, block))
            else:
                return f"its output is read by {type(mod).__name__} {r.name}"
    if not outgoing:
        return "no weight layer reads its output"
    return HiddenLayer(
        name=incoming_node.name,
        activation_name=act_name,
        activation=act,
        incoming=inc,
        norm_name=norm_node.name if norm_node is not None else None,
        norm=norm,
        outgoing=tuple(outgoing),
        num_units=units,
        channel_dim=channel_dim,
        positions=positions,
    )
