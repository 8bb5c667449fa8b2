"""What ReDo and continual backprop share: finding the hidden units of the attached
network, capturing its training input, and replacing a set of units.

:class:`UnitResetIntervention` is the base of :class:`~normrl.plasticity.redo.ReDo` and
:class:`~normrl.plasticity.cbp.ContinualBackprop`. It

* captures the input of the most recent *training* forward of the attached model (a
  forward pre-hook on the model; a training forward is one with ``model.training`` and
  autograd enabled, so acting, evaluation and a DQN target computation under
  ``torch.no_grad()`` are not captured). The reference is kept, nothing is copied;
* traces the hidden units (:func:`~normrl.plasticity.units.trace_hidden_units`) once, on
  the first captured batch (or the batch given to :meth:`set_probe`), warns once naming
  every activation it cannot trace, and traces again after a structural change of the
  network (``on_structure_change``);
* replaces units (:meth:`replace_units`): incoming weights (rows) from a fresh draw of
  the layer's own initializer (``reset_parameters()`` of a copy of the layer, run under
  an RNG seeded from the intervention's generator; or ``init(copy)`` when ``init`` is
  given, e.g. for the SELU MLP's LeCun-normal initialization), incoming bias 0, per-unit
  norm parameters and statistics back to a fresh norm's values, outgoing weights
  (columns, or the column block of a conv channel behind a ``Flatten``) 0, and the
  optimizer state of exactly those rows, entries and columns zeroed
  (:func:`~normrl.plasticity.optim_state.zero_state_slices`; Adam's per-tensor ``step``
  is kept, see there).

Frozen units (an incoming layer with ``requires_grad=False``, e.g. a head frozen by
plasticity injection) are never replaced. The layers *reading* a replaced unit are edited
whether they train or not (zeroed columns; continual backprop's bias transfer), because
otherwise the replacement would change the network's function; optimizer state is only
touched for parameters the optimizer updates.

Hooks survive ``copy.deepcopy(model)`` as no-ops (a DQN target network copied after
``attach`` does not feed the intervention) and pickle as no-ops.

When the model is not called as a whole during training (e.g. SB3 policies call their
sub-networks), no input is captured: give the batch with :meth:`set_probe`.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from normrl.plasticity.base import Intervention
from normrl.plasticity.optim_state import zero_state_slices
from normrl.plasticity.units import HiddenLayer, UnitTrace, fresh_copy, fresh_norm, trace_hidden_units

__all__ = ["UnitResetIntervention", "rows"]


class _NoHook:
    """What a hook becomes in a deepcopy or a pickle of the model: nothing."""

    def __call__(self, *args, **kwargs) -> None:
        return None


class _Hook:
    """A hook bound to one module of one attached model; a copy of the model gets a
    :class:`_NoHook` instead (a hook holding the intervention must not follow the
    model into a target network or a pickle)."""

    def __init__(self, module: nn.Module, fn: Callable) -> None:
        self.module = module
        self.fn = fn

    def __call__(self, module, *args):
        if module is self.module:
            return self.fn(module, *args)
        return None

    def __deepcopy__(self, memo):
        return _NoHook()

    def __reduce__(self):
        return (_NoHook, ())


def rows(x: Any, n: int) -> Any:
    """The first ``n`` rows of a batch (a tensor, or each tensor of a tuple)."""
    if isinstance(x, torch.Tensor):
        return x[:n]
    if isinstance(x, tuple):
        return tuple(rows(t, n) for t in x)
    return x


def _detached_copy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, tuple):
        return tuple(_detached_copy(t) for t in x)
    return x


def _training_forward(module: nn.Module) -> bool:
    return module.training and torch.is_grad_enabled()


class UnitResetIntervention(Intervention):
    """Base class: input capture, unit tracing and unit replacement (module docstring).

    Args (for subclasses):
        init: ``init(layer)`` re-initializing a copy of an incoming layer in place
            [None: ``layer.reset_parameters()``].
        forward: ``forward(model, x)`` running the model on a captured or probe batch
            [None: ``model(x)``, ``model(*x)`` for a tuple].
    """

    def __init__(self, init: Optional[Callable[[nn.Module], Any]] = None, forward: Optional[Callable[[nn.Module, Any], Any]] = None) -> None:
        super().__init__()
        if init is not None and not callable(init):
            raise ValueError(f"init must be a callable(layer) or None, got {init!r}")
        if forward is not None and not callable(forward):
            raise ValueError(f"forward must be a callable(model, x) or None, got {forward!r}")
        self.init = init
        self.forward = forward
        self.layers: Optional[list[HiddenLayer]] = None
        self.trace: Optional[UnitTrace] = None
        self._last_input: Any = None
        self._probe: Any = None
        self._trace_input: Any = None  # a few rows of the batch traced last (to trace again)
        self._handles: list = []
        self._busy = False  # our own forwards (tracing, scoring) are not training forwards

    # -- attaching and capturing ----------------------------------------------------------

    def attach(self, model: nn.Module, optimizer) -> None:
        super().attach(model, optimizer)
        self._remove_hooks()
        self.layers = None
        self.trace = None
        self._last_input = None
        self._handles.append(model.register_forward_pre_hook(_Hook(model, self._capture)))

    def _capture(self, module: nn.Module, args) -> None:
        if not self._busy and _training_forward(module) and args:
            self._last_input = args[0] if len(args) == 1 else tuple(args)

    def set_probe(self, x: Any) -> None:
        """Use ``x`` (a batch the model takes; None to go back to the captured training
        input) for tracing and, for ReDo, for scoring."""
        self._probe = x

    def _input(self) -> Any:
        if self._probe is not None:
            return self._probe
        return self._last_input if self._last_input is not None else self._trace_input

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def on_structure_change(self) -> None:
        self.layers = None
        self.trace = None

    # -- tracing ------------------------------------------------------------------------------

    def ensure_traced(self) -> bool:
        """Trace the units if not done yet; False when there is no input to trace with."""
        if self.layers is not None:
            return True
        x = self._input()
        if x is None:
            return False
        self._trace_input = _detached_copy(rows(x, 8))
        self._busy = True
        try:
            self.trace = trace_hidden_units(self._require_attached(), self._trace_input, forward=self.forward)
        finally:
            self._busy = False
        layers = []
        skipped = dict(self.trace.skipped)
        for layer in self.trace.layers:
            if not layer.incoming.weight.requires_grad:
                skipped[layer.activation_name] = f"its weight layer {layer.name} is frozen"
                continue
            if self.init is None and not callable(getattr(layer.incoming, "reset_parameters", None)):
                skipped[layer.activation_name] = f"{type(layer.incoming).__name__} {layer.name} has no reset_parameters() (pass init=)"
                continue
            layers.append(layer)
        self.trace.skipped = skipped
        if any("frozen" not in why for why in skipped.values()):  # frozen layers are left alone by design
            warnings.warn(self.trace.skipped_message(self.name), stacklevel=3)
        if not layers:
            warnings.warn(f"{self.name}: no hidden units of {type(self.model).__name__} can be traced (no activation "
                          "module between two weight layers, or none traceable); it will change nothing", stacklevel=3)
        self.layers = layers
        self.on_traced()
        return True

    def on_traced(self) -> None:
        """Called after every (re)trace; subclasses build their per-layer state here."""

    # -- replacing units ------------------------------------------------------------------------

    def _device(self) -> torch.device:
        p = next(self._require_attached().parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def fresh_layers(self, layers: list[HiddenLayer]) -> list[nn.Module]:
        """A fresh initialization of each layer's incoming weight layer, drawn under the
        intervention's forked RNG (one seed per call)."""
        with self.fresh_rng(self._device()):
            return [fresh_copy(layer.incoming, self.init) for layer in layers]

    @torch.no_grad()
    def replace_units(self, layers: list[HiddenLayer], units: list[torch.Tensor], before: Optional[Callable[[HiddenLayer, torch.Tensor], None]] = None) -> None:
        """Replace ``units[i]`` (a 1-d long tensor on the parameters' device) of
        ``layers[i]`` for every ``i``, in this order: ``before(layer, units)`` for every
        layer (continual backprop's bias transfer, which reads the current outgoing
        weights), then every layer's incoming weights, bias and norm entries, then every
        layer's outgoing weights, then the optimizer state.

        Zeroing all outgoing weights after all re-initializations keeps the weights
        between two replaced units of consecutive layers at 0, and a replaced unit's bias
        is 0 even when a unit of the previous layer moved its contribution into it."""
        todo = [(layer, idx) for layer, idx in zip(layers, units) if idx.numel() > 0]
        if not todo:
            return
        if before is not None:
            for layer, idx in todo:
                before(layer, idx)
        fresh = self.fresh_layers([layer for layer, _ in todo])
        for (layer, idx), new in zip(todo, fresh):
            layer.reinit_incoming(idx, new)
            if layer.norm is not None:
                layer.reset_norm(idx, fresh_norm(layer.norm))
        for layer, idx in todo:
            layer.zero_outgoing(idx)
        opt = self.optimizer
        if opt is None:
            return
        owned = {id(p) for group in opt.param_groups for p in group["params"]}
        for layer, idx in todo:
            slices = [(p, idx, 0) for p in layer.incoming_params]
            slices += [(t, idx, 0) for _, t in layer.norm_unit_tensors() if isinstance(t, nn.Parameter)]
            slices += [(out.module.weight, out.columns(idx), 1) for out in layer.outgoing]
            for param, index, dim in slices:
                if id(param) in owned:
                    zero_state_slices(opt, param, index, dim)
