"""Continual backpropagation (Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood & Sutton,
"Loss of plasticity in deep continual learning", Nature 632, 2024; arXiv 2306.13812).

Exact variant. After every optimizer step, for every hidden layer ``l`` (the units found
by :func:`~normrl.plasticity.units.trace_hidden_units`):

1. every unit ages by one update;
2. its **contribution utility** is updated with decay ``η`` (the paper's Eq. 1)::

       u_i ← η·u_i + (1 − η)·|h_i|·Σ_k |w_ik|

   where ``|h_i|`` is the unit's mean absolute activation over the mini-batch of the
   update's training forward (and over the positions of a conv channel; the paper's
   Methods allow averaging the instantaneous utility over a mini-batch) and ``Σ_k |w_ik|`` sums the magnitudes of all its outgoing weights after
   the step, over every layer reading it. For a conv channel read by a conv layer that
   is ``Σ`` over output channels and kernel taps; for a channel behind a ``Flatten`` each
   position ``p`` has its own outgoing weights and activity, ``Σ_p E|h_ip|·Σ_k |w_k,ip|``.
   (The authors' code ``lop/algos/gnt.py`` uses the *mean* instead of the sum of the
   outgoing magnitudes; within a layer this scales every utility by the same constant
   and selects the same units.)
3. ranking uses the bias-corrected utility ``û_i = u_i / (1 − η^{age_i})`` (as the
   authors' code does, an Adam-style correction; ``utility_bias_correction=False``
   ranks by ``u_i``, Eq. 1 literally), so a young mature unit is not ranked low only
   because its running average started at 0;
4. units older than the **maturity threshold** ``m`` are eligible; the number to replace
   accumulates across steps, ``ρ·(number eligible)`` per step, and the replacements made
   after ``T`` steps are ``floor(ρ·Σ_t eligible_t)`` (computed in float64 from the
   integer sum, so fractional rates work and do not drift); the code's ``accumulate``
   mode; the paper's Algorithm 1 replaces one unit per step while the count exceeds 1.
   The replaced units are the eligible ones with the lowest ``û`` (ties: lower index).
5. each replaced unit: incoming weights from a fresh draw of the layer's initializer
   (``reset_parameters()`` of a copy of the layer under this intervention's RNG; the
   authors draw ``U(±gain·√(3/fan_in))``, PyTorch's default for ``Linear``/``Conv`` is
   ``U(±√(1/fan_in))``; pass ``init=`` for another initializer), incoming bias 0,
   per-unit norm gain/offset/statistics back to a fresh norm's (as ``cbp_linear.py``
   does for LayerNorm/BatchNorm), **bias transfer** (below), outgoing weights 0 (so the
   new unit does not change the function), utility, running mean and age 0, and the
   optimizer state of its rows, bias/norm entries and outgoing columns zeroed.

**Bias transfer** (``bias_transfer=True``): before its outgoing weights are zeroed, the
replaced unit's mean contribution ``w_out·f̂_i`` moves into the bias of every layer
reading it, where ``f̂_i = f_i / (1 − η^{age_i})`` is its bias-corrected running mean
activation (``f_i ← η·f_i + (1 − η)·mean h_i``). This is the bias correction of the
first continual-backprop paper (Dohare, Sutton & Mahmood 2021, arXiv 2108.06325: the
mean part of a removed unit's contribution would otherwise have to be relearned by the
bias through SGD), which
``gnt.py`` also writes — but there it reads the running mean after having reset it to
0, so the transfer adds nothing; the Nature paper's Algorithm 1 has no transfer. With
the transfer, the output is exactly unchanged at a replacement when the unit's
activation was constant (a dead or saturated unit), and unchanged in expectation
otherwise. Conv consumers get ``Σ_taps w·f̂`` (exact away from zero-padded borders);
consumers without a bias (NaP's bias-free layers) get nothing.

Utilities (``utility=``): ``"contribution"`` (Eq. 1, the default, as above);
``"mean_corrected"``: ``|h_i − f̂_i|`` instead of ``|h_i|`` (2021 paper's mean-corrected
contribution, ``gnt.py``'s ``zero_contribution``); ``"adaptable"``: mean-corrected
divided by ``Σ_j |w_ji|`` of the incoming weights (``adaptable_contribution``, used by the
authors' Permuted-MNIST, ImageNet and bit-flipping configurations).

Optimizer state: the authors' ``AdamGnT`` keeps Adam's step count per element and
zeroes it for replaced weights, restarting their bias correction. torch's Adam has one
``step`` per tensor, so normrl zeroes the moments and keeps the step (the choice ReDo's
reference code makes; :mod:`normrl.plasticity.optim_state` quantifies it). Matching
``AdamGnT`` would need a per-element step, i.e. an optimizer of normrl's own; the
paper's supervised experiments use SGD, where zeroing the momentum buffer is exact.

Defaults (the paper's): ``decay_rate η=0.99`` (the value of all the paper's experiments),
``maturity_threshold m=100`` (Continual ImageNet, Online Permuted MNIST; class-incremental
CIFAR-100 used 1000; the RL Ant experiments 10,000), ``replacement_rate ρ=1e-4``
(``gnt.py``'s default and the Ant setting; ImageNet used 3e-4, CIFAR-100 1e-5).

``decay_rate=0`` is the instantaneous utility of the authors' layer form
(``cbp_linear.py``; the Nature Methods mention it as the cheaper alternative to the
running average for mini-batch learners): the utility is the last update's
contribution only, so it is computed only on the updates that replace a unit.

Cost per update (``scripts/bench_unit_interventions.py``): a forward hook on each traced
activation keeps a reference to its output (no computation); ``after_step`` reduces
``|h|`` (and ``h`` for activations that can be negative, for the bias transfer) over the
batch and positions — one concatenation and one reduction for all MLP layers together —
and the column magnitudes of every reading layer, into a buffer of 32 updates that is
folded into ``u`` and ``f`` every 32 updates or right before a replacement. Ages and
replacement counts live on the host, so nothing synchronizes with the device except a
replacement (to learn which units). ``mean_corrected``/``adaptable`` update the running
mean every update (a few more kernels). An update without a training forward through a
layer leaves its state unchanged.
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
from torch.nn.modules.conv import _ConvNd

from normrl.plasticity.base import STAGE_RESET, make_generator
from normrl.plasticity.registry import register_intervention
from normrl.plasticity.unit_reset import UnitResetIntervention, _Hook, _training_forward
from normrl.plasticity.units import HiddenLayer

__all__ = ["ContinualBackprop", "UTILITIES"]

#: Valid values of ``utility``.
UTILITIES = ("contribution", "mean_corrected", "adaptable")
#: Activations whose output is never negative: their mean equals their mean magnitude.
_NONNEGATIVE = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Softplus, nn.Hardsigmoid)
_BUFFER_STEPS = 32
#: Activations with at least this many elements are reduced in the forward hook.
_EAGER_NUMEL = 1 << 16


class _LayerState:
    """Utility bookkeeping of one hidden layer: device tensors, and the ages on the host
    (a unit's age is ``t - birth``; ``sorted_births`` counts the eligible units without
    touching a tensor)."""

    def __init__(self, layer: HiddenLayer, device: torch.device, steps: int, centered: bool, track_mean: bool,
                 act: Optional[torch.Tensor] = None, mean: Optional[torch.Tensor] = None) -> None:
        self.layer = layer
        self.units, self.positions = layer.num_units, layer.positions
        self.steps = steps
        self.signed = signed = not isinstance(layer.activation, _NONNEGATIVE)
        self.u = torch.zeros(self.units, device=device)
        self.f = torch.zeros(self.units, self.positions, device=device)
        self.birth = torch.zeros(self.units, dtype=torch.int64)
        self.sorted_births = [0] * self.units
        self.t = 0
        self.eligible_sum = 0
        self.credited = 0
        red = (self.units,) if self.positions == 1 else (self.units, self.positions)
        # per buffered step: sum |h| (or mean |h - f̂| when centered), sum h, outgoing
        # column magnitudes per reading layer, incoming row magnitudes (adaptable)
        # (views of buffers shared by a group of layers when given)
        self.act = act if act is not None else torch.zeros((steps,) + red, device=device)
        needs_mean = track_mean and (signed or centered)
        self.mean = (mean if mean is not None else torch.zeros((steps,) + red, device=device)) if needs_mean else None
        self.win = torch.zeros(steps, self.units, device=device)
        self.scale: list[float] = []
        self.fill = 0
        self.h: Optional[torch.Tensor] = None  # the activation of the last training forward
        self.recorded = False  # its activity is already in the buffer (large activations)
        self.rebind(layer, device)

    def rebind(self, layer: HiddenLayer, device: torch.device) -> None:
        """Follow a retraced layer (its outgoing layers may be new modules); the buffered
        steps must have been folded."""
        self.layer = layer
        self.weights = [out.module.weight for out in layer.outgoing]
        self.weight_dims = [(0,) + tuple(range(2, w.dim())) if isinstance(out.module, _ConvNd) else (0,) for w, out in zip(self.weights, layer.outgoing)]
        self.wout = [torch.zeros(self.steps, self.units * out.block, device=device) for out in layer.outgoing]
        self.wout_slots = [[buf[j] for j in range(self.steps)] for buf in self.wout]  # views, made once
        self._shape: Optional[tuple] = None  # (activation shape, reduce dims, per-step slot views)

    def slots(self, h: torch.Tensor) -> tuple[tuple[int, ...], list, Optional[list]]:
        """Reduce dims of ``h`` and per-step views of the activity and mean buffers in
        ``h``'s reduced shape (cached: the unit axes do not change between steps)."""
        key = tuple(h.shape[1:])
        if self._shape is None or self._shape[0] != key:
            dims = (0,) if self.positions > 1 else self.layer.reduce_dims(h)
            view = key if self.positions > 1 else (self.units,)
            acts = [self.act[j].view(view) for j in range(self.steps)]
            means = [self.mean[j].view(view) for j in range(self.steps)] if self.mean is not None else None
            self._shape = (key, dims, acts, means)
        return self._shape[1], self._shape[2], self._shape[3]

    def ages(self) -> torch.Tensor:
        return self.t - self.birth

    def eligible(self, maturity: int) -> int:
        """Units with age > maturity, i.e. born before step t - maturity."""
        return bisect.bisect_left(self.sorted_births, self.t - maturity)

    def reborn(self, units: list[int]) -> None:
        for i in units:
            del self.sorted_births[bisect.bisect_left(self.sorted_births, int(self.birth[i]))]
            self.birth[i] = self.t
        self.sorted_births.extend([self.t] * len(units))

    def unit_view(self, h: torch.Tensor) -> tuple[int, ...]:
        """Shape of one buffered step for activation ``h``: (units,) or (C, H, W)."""
        return tuple(h.shape[1:]) if self.positions > 1 else (self.units,)


class _Group:
    """Layers of flat units whose per-step activity lives in one shared buffer."""

    def __init__(self, layers: list[HiddenLayer], act: torch.Tensor, mean: Optional[torch.Tensor]) -> None:
        self.layers = layers
        self.act, self.mean = act, mean
        self.offsets, off = [], 0
        for layer in layers:
            self.offsets.append(off)
            off += layer.num_units
        self.states: list[_LayerState] = []
        self.signed = True
        self._scratch: Optional[tuple] = None

    def views(self, layer: HiddenLayer) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        i = next(k for k, m in enumerate(self.layers) if m is layer)
        sl = slice(self.offsets[i], self.offsets[i] + layer.num_units)
        return self.act[:, sl], (self.mean[:, sl] if self.mean is not None else None)

    def record(self) -> bool:
        """One reduction for every member when all hold a 2-d activation of the same
        batch at the same buffer slot; False (nothing done) otherwise."""
        states = self.states
        first = states[0].h
        if first is None or first.dim() != 2:
            return False
        j, n = states[0].fill, first.shape[0]
        for st in states:
            h = st.h
            if h is None or h.dim() != 2 or h.shape[0] != n or st.fill != j or h.dtype != first.dtype:
                return False
        # preallocated: fresh large temporaries each step cost page faults on the CPU
        key = (n, first.dtype, first.device)
        if self._scratch is None or self._scratch[0] != key:
            width = sum(st.units for st in states)
            self._scratch = (key, first.new_empty(n, width), first.new_empty(n, width) if self.signed else None)
        _, cat, mag = self._scratch
        torch.cat([st.h for st in states], 1, out=cat)
        if self.signed:
            torch.abs(cat, out=mag)
        torch.sum(mag if self.signed else cat, 0, dtype=torch.float32, out=self.act[j])
        if self.mean is not None:
            torch.sum(cat, 0, dtype=torch.float32, out=self.mean[j])
        for st in states:
            if len(st.scale) > j:
                st.scale[j] = 1.0 / n
            else:
                st.scale.append(1.0 / n)
        return True


@register_intervention("cbp", paper="Dohare et al. 2024 (Nature), arXiv 2306.13812", description="continual backprop: replace the lowest-utility mature units at rate ρ per step (fresh incoming, zero outgoing, bias transfer)")
class ContinualBackprop(UnitResetIntervention):
    """Continual backpropagation (see the module docstring for the exact variant).

    Args:
        replacement_rate: ρ, units replaced per step per eligible unit [1e-4].
        maturity_threshold: m, updates a unit is protected after (re)initialization
            [100].
        decay_rate: η of the running utility and mean [0.99].
        utility: ``"contribution"`` [default], ``"mean_corrected"`` or ``"adaptable"``.
        utility_bias_correction: rank by ``u/(1 − η^age)`` [True].
        bias_transfer: move a replaced unit's mean contribution into the next layers'
            biases [True].
        seed: seed of the generator of the fresh initializations [0].
        init: ``init(layer)`` re-initializing a copy of an incoming layer in place
            [None: ``layer.reset_parameters()``] (Python only).
        forward: ``forward(model, x)`` running the model (for tracing) [None] (Python only).

    ``last_event`` after a step with replacements: ``{"reset_units/<incoming layer>": n}``.
    """

    order = STAGE_RESET
    per_step = True

    def __init__(
        self,
        replacement_rate: float = 1e-4,
        maturity_threshold: int = 100,
        decay_rate: float = 0.99,
        utility: str = "contribution",
        utility_bias_correction: bool = True,
        bias_transfer: bool = True,
        seed: int = 0,
        init: Optional[Callable[[nn.Module], Any]] = None,
        forward: Optional[Callable[[nn.Module, Any], Any]] = None,
    ) -> None:
        super().__init__(init=init, forward=forward)
        if not isinstance(replacement_rate, (int, float)) or isinstance(replacement_rate, bool) or not 0.0 <= replacement_rate <= 1.0:
            raise ValueError(f"replacement_rate must be in [0, 1], got {replacement_rate!r}")
        if not isinstance(maturity_threshold, int) or isinstance(maturity_threshold, bool) or maturity_threshold < 0:
            raise ValueError(f"maturity_threshold must be an int >= 0, got {maturity_threshold!r}")
        if not isinstance(decay_rate, (int, float)) or isinstance(decay_rate, bool) or not 0.0 <= decay_rate < 1.0:
            raise ValueError(f"decay_rate must be in [0, 1), got {decay_rate!r}")
        if utility not in UTILITIES:
            raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}")
        self.replacement_rate = float(replacement_rate)
        self.maturity_threshold = maturity_threshold
        self.decay_rate = float(decay_rate)
        self.utility = utility
        self.utility_bias_correction = bool(utility_bias_correction)
        self.bias_transfer = bool(bias_transfer)
        self.generator = make_generator(seed)
        self.centered = utility != "contribution"
        self._instantaneous = self.decay_rate == 0.0 and not self.centered
        self.states: list[_LayerState] = []
        self._hook_handles: list = []
        self._pending_state: Optional[dict] = None
        self._ones: dict = {}
        self._scratch: dict = {}
        self._group: Optional[_Group] = None

    # -- tracing and hooks -------------------------------------------------------------------

    def attach(self, model, optimizer) -> None:
        self._remove_layer_hooks()
        self.states = []
        super().attach(model, optimizer)

    def _capture(self, module: nn.Module, args) -> None:
        super()._capture(module, args)
        if self.layers is None and not self._busy and _training_forward(module) and args:
            self.ensure_traced()  # before this forward runs, so its activations are recorded

    def set_probe(self, x: Any) -> None:
        """Trace the network from ``x`` (needed only when the model is not called as a
        whole during training, e.g. SB3 policies)."""
        super().set_probe(x)
        if self.model is not None and x is not None and self.layers is None:
            self.ensure_traced()

    def on_structure_change(self) -> None:
        super().on_structure_change()
        if self.model is not None and self._input() is not None:
            self.ensure_traced()

    def _remove_layer_hooks(self) -> None:
        for h in self._hook_handles:
            h.remove()
        self._hook_handles = []

    def on_traced(self) -> None:
        self._remove_layer_hooks()
        for st in self.states:
            self._fold(st)
        old = {(st.layer.name, st.units, id(st.layer.incoming)): st for st in self.states}
        device = self._device()
        steps = 1 if (self.centered or self._instantaneous) else _BUFFER_STEPS
        track_mean = self.bias_transfer or self.centered
        layers = list(self.layers or [])
        # layers of flat units (no positions) share one activity buffer, so that one
        # concatenation and one reduction serve all of them each step
        flat = [layer for layer in layers if layer.positions == 1 and (layer.name, layer.num_units, id(layer.incoming)) not in old]
        group = None
        if not self.centered and len(flat) > 1:
            total = sum(layer.num_units for layer in flat)
            group = _Group(flat, torch.zeros(steps, total, device=device), torch.zeros(steps, total, device=device) if track_mean else None)
        states = []
        for layer in layers:
            key = (layer.name, layer.num_units, id(layer.incoming))
            state = old.get(key)
            if state is None:
                act = mean = None
                if group is not None and any(m is layer for m in group.layers):
                    act, mean = group.views(layer)
                state = _LayerState(layer, device, steps, self.centered, track_mean, act=act, mean=mean)
            else:
                state.rebind(layer, device)
            states.append(state)
            self._hook_handles.append(layer.activation.register_forward_hook(_Hook(layer.activation, self._recorder(state))))
        self.states = states
        if group is not None:
            group.states = [st for st in states if any(st.layer is m for m in group.layers)]
            group.signed = any(st.signed for st in group.states)
        self._group = group if group is None or len(group.states) == len(group.layers) else None
        self._remove_hooks()  # the input capture is needed no more: the trace input is kept
        self._last_input = None
        if self._pending_state is not None:
            pending, self._pending_state = self._pending_state, None
            self._load_layers(pending)

    def _recorder(self, s: _LayerState):
        eager = not (self.centered or self._instantaneous)

        def record(module, inputs, h):
            if self._busy or not module.training or not torch.is_grad_enabled():
                return
            if eager and h.numel() >= _EAGER_NUMEL:
                # a large activation: reduce it now, while it is in cache, rather than
                # keep it alive past the backward pass
                with torch.no_grad():
                    self._record_activity(s, h)
                s.recorded, s.h = True, None
            else:
                # keep a reference only (autograd keeps it for backward anyway); small
                # activations are reduced together in after_step
                s.h, s.recorded = h, False

        return record

    def _record_activity(self, s: _LayerState, h: torch.Tensor) -> None:
        """``Σ|h|`` (and ``Σh``) of one layer into its buffer slot ``fill``."""
        j = s.fill
        dims, acts, means = s.slots(h)
        self._sum(self._abs(h, s) if s.signed else h, dims, acts[j])  # |h| = h after ReLU & co.
        if means is not None:
            self._sum(h, dims, means[j])
        scale = s.units * s.positions / h.numel()  # 1 / (elements averaged per slot)
        if len(s.scale) > j:
            s.scale[j] = scale
        else:
            s.scale.append(scale)

    def _abs(self, x: torch.Tensor, owner: object) -> torch.Tensor:
        """``|x|`` into a buffer kept per ``owner``: a fresh large temporary on every update
        costs the CPU allocator page faults."""
        buf = self._scratch.get(id(owner))
        if buf is None or buf.shape != x.shape or buf.dtype != x.dtype or buf.device != x.device:
            buf = self._scratch[id(owner)] = torch.empty_like(x)
        return torch.abs(x, out=buf)

    def _sum(self, x: torch.Tensor, dims: tuple[int, ...], out: torch.Tensor) -> None:
        """``out = x.sum(dims)`` in float32; a wide batch-first sum is a matrix-vector
        product with ones, which CPU BLAS does several times faster than ``sum(0)``."""
        n = x.shape[0]
        m = x.numel() // max(n, 1)
        if dims[0] == 0 and x.dtype == torch.float32 and m >= 512 and out.is_contiguous():
            nhwc = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
            if x.is_contiguous() or nhwc:
                ones = self._ones.get((n, x.device))
                if ones is None:
                    ones = self._ones[(n, x.device)] = torch.ones(n, device=x.device)
                mat = x.permute(0, 2, 3, 1).reshape(n, m) if nhwc else x.reshape(n, m)
                col = ones @ mat
                if nhwc:
                    col = col.view(x.shape[2], x.shape[3], x.shape[1]).permute(2, 0, 1)
                col = col.reshape(x.shape[1:])
                if len(dims) == 1:
                    out.copy_(col.reshape(out.shape))
                else:
                    torch.sum(col, tuple(d - 1 for d in dims[1:]), out=out)
                return
        torch.sum(x, dims, dtype=torch.float32, out=out)

    def _record_centered(self, s: _LayerState, h: torch.Tensor, dims: tuple[int, ...], count: int) -> None:
        """``mean |h − f̂|`` with the running mean including this step, bias-corrected
        with the age the unit has after this step (``gnt.py``'s order)."""
        eta = self.decay_rate
        mean = torch.sum(h, dims, dtype=torch.float32).div_(count).reshape(s.units, s.positions)
        corr = (1.0 - eta ** s.ages().to(torch.float64)).clamp_min(1e-300).to(device=h.device, dtype=torch.float32)
        f_hat = (s.f * eta + mean * (1 - eta)) / corr.unsqueeze(1)
        if s.positions > 1:
            shape = (1,) + tuple(h.shape[1:])
        else:
            shape = [1] * h.dim()
            shape[s.layer.channel_dim] = s.units
        dev = (h.float() - f_hat.reshape(shape)).abs()
        s.act[0].copy_(dev.mean(dims).reshape(s.act[0].shape))
        s.mean[0].copy_(mean.reshape(s.mean[0].shape))
        s.scale[:] = [1.0]

    # -- the method ---------------------------------------------------------------------------

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        self.last_event = {}
        ready = [s for s in self.states if s.h is not None or s.recorded]
        if not ready:
            return
        # host bookkeeping first: ages, eligible units, replacement credit
        counts = []
        for s in ready:
            s.t += 1
            eligible = s.eligible(self.maturity_threshold)
            s.eligible_sum += eligible
            credited = math.floor(self.replacement_rate * s.eligible_sum)
            counts.append(min(credited - s.credited, eligible))
            s.credited = credited
        if self._instantaneous:
            # η = 0: the utility is the last step's contribution alone, needed only
            # when a unit is replaced (cbp_linear.py's mode)
            active = [s for s, n in zip(ready, counts) if n > 0]
            for s in ready:
                if s not in active:
                    s.h, s.recorded = None, False
            pairs = [(s, n) for s, n in zip(ready, counts) if n > 0]
            ready = active
        else:
            pairs = list(zip(ready, counts))
        if ready:
            self._record(ready)
        todo: list[tuple[_LayerState, torch.Tensor]] = []
        for s, n in pairs:
            s.fill += 1
            if n > 0 or s.fill == s.steps:
                self._fold(s)
            if n > 0:
                todo.append((s, self._select(s, s.ages(), n)))
        if todo:
            self._replace(todo)

    def _record(self, ready: list[_LayerState]) -> None:
        """This step's statistics of ``ready`` layers into their buffer slot ``fill``:
        activity ``Σ|h|`` (and ``Σh``) over the batch and positions, the column
        magnitudes of every outgoing weight (and row magnitudes of the incoming one)."""
        if self.centered:
            for s in ready:
                dims = (0,) if s.positions > 1 else s.layer.reduce_dims(s.h)
                self._record_centered(s, s.h, dims, math.prod(s.h.shape[d] for d in dims))
        else:
            grouped = set()
            group = self._group
            if group is not None and len(ready) == len(self.states) and group.record():
                grouped = {id(st) for st in group.states}
            for s in ready:
                if id(s) not in grouped and s.h is not None:
                    self._record_activity(s, s.h)
        for s in ready:
            j = s.fill
            for w, slots, dims in zip(s.weights, s.wout_slots, s.weight_dims):
                torch.sum(self._abs(w, w), dims, dtype=torch.float32, out=slots[j])
            if self.utility == "adaptable":
                w = s.layer.incoming.weight
                torch.sum(self._abs(w, w), tuple(range(1, w.dim())), dtype=torch.float32, out=s.win[j])
        for s in ready:
            s.h, s.recorded = None, False

    def _fold(self, s: _LayerState) -> None:
        """Fold the buffered steps into ``u`` and ``f``: with ``k`` buffered steps
        ``x_1..x_k``, ``u ← η^k·u + (1−η)·Σ_i η^(k−i)·x_i``, the same as ``k`` updates."""
        k = s.fill
        if k == 0:
            return
        eta = self.decay_rate
        device = s.u.device
        # float64 on the host, then float32: the per-step weights (1-η)η^(k-i) and each
        # step's 1/count (a mean over the batch and positions)
        coeff = torch.tensor([(1 - eta) * eta ** (k - 1 - i) * s.scale[i] for i in range(k)], dtype=torch.float32, device=device)
        n_units, pos = s.units, s.positions
        act = s.act[:k].reshape(k, n_units, pos)
        contrib = torch.zeros(k, n_units, device=device)
        for buf, out in zip(s.wout, s.layer.outgoing):
            w = buf[:k]
            if out.block > 1:
                contrib += (act * w.reshape(k, n_units, out.block)).sum(-1)
            else:
                contrib += act.mean(-1) * w
        if self.utility == "adaptable":
            contrib /= s.win[:k].clamp_min(1e-12)
        decay = eta ** k
        s.u.mul_(decay).add_(coeff @ contrib)
        if self.bias_transfer or self.centered:
            mean = act if s.mean is None else s.mean[:k].reshape(k, n_units, pos)
            s.f.mul_(decay).add_(torch.einsum("k,kup->up", coeff, mean))
        s.fill = 0
        s.scale.clear()

    def utilities(self, bias_corrected: bool = True) -> dict[str, torch.Tensor]:
        """``{incoming layer name: utility per unit}`` up to the last step, bias-corrected
        by ``1 − η^age`` unless ``bias_corrected=False`` (folds the buffered steps first,
        which changes later values only by float rounding)."""
        out = {}
        for s in self.states:
            self._fold(s)
            u = s.u.clone()
            if bias_corrected:
                u /= (1.0 - self.decay_rate ** s.ages().to(torch.float64)).clamp_min(1e-300).to(device=u.device, dtype=u.dtype)
            out[s.layer.name] = u
        return out

    def _select(self, s: _LayerState, ages: torch.Tensor, n: int) -> torch.Tensor:
        """The ``n`` eligible units with the lowest (bias-corrected) utility."""
        device = s.u.device
        util = s.u
        if self.utility_bias_correction:
            corr = (1.0 - self.decay_rate ** ages.to(torch.float64)).clamp_min(1e-300).to(torch.float32)
            util = util / corr.to(device)
        eligible = (ages > self.maturity_threshold).to(device)
        ranked = torch.where(eligible, util, torch.full_like(util, math.inf))
        order = torch.sort(ranked, stable=True).indices
        return order[:n]

    def _replace(self, todo: list[tuple[_LayerState, torch.Tensor]]) -> None:
        by_layer = {id(s.layer): s for s, _ in todo}
        eta = self.decay_rate

        def transfer(layer: HiddenLayer, idx: torch.Tensor) -> None:
            if not self.bias_transfer:
                return
            s = by_layer[id(layer)]
            ages = s.ages().index_select(0, idx.cpu()).to(torch.float64)
            corr = (1.0 - eta ** ages).clamp_min(1e-300).to(device=s.f.device, dtype=torch.float32)
            f_hat = s.f.index_select(0, idx) / corr.unsqueeze(1)  # (n, positions)
            for out in layer.outgoing:
                bias = getattr(out.module, "bias", None)
                if bias is None:
                    continue
                w = out.module.weight.index_select(1, out.columns(idx)).float()
                if isinstance(out.module, _ConvNd):
                    delta = w.sum(tuple(range(2, w.dim()))) @ f_hat.mean(1)
                else:
                    delta = (w.reshape(w.shape[0], idx.numel(), out.block) * f_hat.reshape(1, idx.numel(), -1)).sum((1, 2))
                bias.add_(delta.to(bias.dtype))

        layers = [s.layer for s, _ in todo]
        self.replace_units(layers, [idx for _, idx in todo], before=transfer)
        for s, idx in todo:
            s.u.index_fill_(0, idx, 0.0)
            s.f.index_fill_(0, idx, 0.0)
            s.reborn(idx.tolist())
            self.last_event[f"reset_units/{s.layer.name}"] = float(idx.numel())

    # -- checkpointing --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Generator state and, per traced layer (by incoming layer name): utility,
        running mean, birth steps, step and eligibility counters and the not yet folded
        buffer, so a resumed run continues bit-exactly."""
        state = super().state_dict()
        if self._pending_state is not None:
            state["layers"] = self._pending_state
            return state
        layers = {}
        for s in self.states:
            layers[s.layer.name] = {
                "u": s.u.clone(), "f": s.f.clone(), "birth": s.birth.clone(), "t": s.t,
                "eligible_sum": s.eligible_sum, "credited": s.credited, "fill": s.fill, "scale": list(s.scale),
                "act": s.act.clone(), "mean": None if s.mean is None else s.mean.clone(),
                "wout": [b.clone() for b in s.wout], "win": s.win.clone(),
            }
        state["layers"] = layers
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        layers = state.get("layers", {})
        if self.states:
            self._load_layers(layers)
        else:
            self._pending_state = layers  # applied when the network is traced

    def _load_layers(self, layers: dict) -> None:
        by_name = {s.layer.name: s for s in self.states}
        unknown = sorted(set(layers) - set(by_name))
        if unknown:
            raise ValueError(f"cbp: saved state for layers {unknown} that this network does not have (traced: {sorted(by_name)})")
        for name, saved in layers.items():
            s = by_name[name]
            if tuple(saved["u"].shape) != (s.units,) or tuple(saved["act"].shape) != tuple(s.act.shape):
                raise ValueError(f"cbp: saved state of layer {name} has other shapes than the traced layer")
            device = s.u.device
            s.u.copy_(saved["u"].to(device)); s.f.copy_(saved["f"].to(device)); s.birth.copy_(saved["birth"])
            s.t, s.eligible_sum, s.credited, s.fill = int(saved["t"]), int(saved["eligible_sum"]), int(saved["credited"]), int(saved["fill"])
            s.scale = [float(v) for v in saved["scale"]]
            s.act.copy_(saved["act"].to(device))
            if s.mean is not None and saved["mean"] is not None:
                s.mean.copy_(saved["mean"].to(device))
            for b, sb in zip(s.wout, saved["wout"]):
                b.copy_(sb.to(device))
            s.win.copy_(saved["win"].to(device))
            s.sorted_births = sorted(int(b) for b in s.birth)

    def extra_repr(self) -> str:
        return (f"replacement_rate={self.replacement_rate}, maturity_threshold={self.maturity_threshold}, decay_rate={self.decay_rate}, "
                f"utility={self.utility!r}, bias_transfer={self.bias_transfer}")
