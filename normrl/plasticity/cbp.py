"""Continual backpropagation (Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood & Sutton,
"Loss of plasticity in deep continual learning", Nature 632, 2024; arXiv 2306.13812).

Exact variant. After every optimizer step, for every hidden layer ``l`` (the units found
by :func:`~normrl.plasticity.units.trace_hidden_units`):

1. every unit ages by one update;
2. its **contribution utility** is updated with decay ``η`` (the paper's Eq. 1)::

       u_i ← η·u_i + (1 − η)·|h_i|·Σ_k |w_ik|

   where ``|h_i|`` is the unit's mean absolute activation over the mini-batch of the
   update's training forward (and over the positions of a conv channel; the paper: "the
   instantaneous contribution utility can be used by averaging the utility over the
   mini-batch") and ``Σ_k |w_ik|`` sums the magnitudes of all its outgoing weights after
   the step, over every layer reading it. For a conv channel read by a conv layer that
   is ``Σ`` over output channels and kernel taps; for a channel behind a ``Flatten`` each
   position ``p`` has its own outgoing weights and activity, ``Σ_p E|h_ip|·Σ_k |w_k,ip|``.
   (The authors' code ``lop/algos/gnt.py`` uses the *mean* instead of the sum of the
   outgoing magnitudes; within a layer this scales every utility by the same constant
   and selects the same units.)
3. ranking uses the bias-corrected utility ``û_i = u_i / (1 − η^{age_i})`` (as the
   authors' code does, "Adam-style bias correction"; ``utility_bias_correction=False``
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
first continual-backprop paper (Dohare, Sutton & Mahmood 2021, arXiv 2108.06325: "SGD
will transfer the average part of the contribution to the bias unit over time"), which
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

Defaults (the paper's): ``decay_rate η=0.99`` ("set to 0.99 in all experiments"),
``maturity_threshold m=100`` (Continual ImageNet, Online Permuted MNIST; class-incremental
CIFAR-100 used 1000; the RL Ant experiments 10,000), ``replacement_rate ρ=1e-4``
(``gnt.py``'s default and the Ant setting; ImageNet used 3e-4, CIFAR-100 1e-5).

Cost per update: a forward hook on each traced activation computes one ``|h|`` mean per
layer during the training forward (plus a signed mean for non-ReLU activations when the
bias transfer needs it), and ``after_step`` one column-magnitude reduction per reading
layer, written into a buffer of 32 steps that is folded into ``u`` and ``f`` every 32
steps or right before a replacement. Ages and replacement counts are kept on the host,
so there is no host synchronization except at a replacement (to learn which units).
``mean_corrected``/``adaptable`` update the running mean every step (a few more
kernels). A step without a training forward through a layer leaves its state unchanged.
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


class _LayerState:
    """Utility bookkeeping of one hidden layer: device tensors, and the ages on the host
    (a unit's age is ``t - birth``; ``sorted_births`` counts the eligible units without
    touching a tensor)."""

    def __init__(self, layer: HiddenLayer, device: torch.device, steps: int, centered: bool, track_mean: bool) -> None:
        self.layer = layer
        self.units, self.positions = layer.num_units, layer.positions
        self.steps = steps
        signed = not isinstance(layer.activation, _NONNEGATIVE)
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
        self.act = torch.zeros((steps,) + red, device=device)
        self.mean = torch.zeros((steps,) + red, device=device) if (track_mean and (signed or centered)) else None
        self.wout = [torch.zeros(steps, self.units * out.block, device=device) for out in layer.outgoing]
        self.win = torch.zeros(steps, self.units, device=device)
        self.scale: list[float] = []
        self.fill = 0
        self.hooked = False

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
        self.states: list[_LayerState] = []
        self._hook_handles: list = []
        self._pending_state: Optional[dict] = None

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
        old = {(s.layer.name, s.units, id(s.layer.incoming)): s for s in self.states}
        device = self._device()
        steps = 1 if self.centered else _BUFFER_STEPS
        track_mean = self.bias_transfer or self.centered
        states = []
        for layer in self.layers or []:
            state = old.get((layer.name, layer.num_units, id(layer.incoming)))
            if state is None:
                state = _LayerState(layer, device, steps, self.centered, track_mean)
            else:
                state.layer = layer
            states.append(state)
            self._hook_handles.append(layer.activation.register_forward_hook(_Hook(layer.activation, self._recorder(state))))
        self.states = states
        if self._pending_state is not None:
            pending, self._pending_state = self._pending_state, None
            self._load_layers(pending)

    def _recorder(self, s: _LayerState):
        eta = self.decay_rate

        def record(module, inputs, h):
            if self._busy or not _training_forward(module):
                return
            with torch.no_grad():
                layer = s.layer
                dims = (0,) if s.positions > 1 else layer.reduce_dims(h)
                count = math.prod(h.shape[d] for d in dims)
                view = s.unit_view(h)
                if self.centered:
                    # running mean including this step, bias-corrected with the age the
                    # unit will have after this step; then the mean |h - f̂|
                    mean = torch.sum(h, dims, dtype=torch.float32).div_(count).reshape(s.units, s.positions)
                    corr = (1.0 - eta ** (s.ages() + 1).to(torch.float64)).clamp_min(1e-300).to(device=h.device, dtype=torch.float32)
                    f_hat = (s.f * eta + mean * (1 - eta)) / corr.unsqueeze(1)
                    if s.positions > 1:
                        shape = (1,) + tuple(h.shape[1:])
                    else:
                        shape = [1] * h.dim()
                        shape[layer.channel_dim] = s.units
                    dev = (h.float() - f_hat.reshape(shape)).abs()
                    s.act[0].copy_(dev.mean(dims).reshape(s.act[0].shape))
                    s.mean[0].copy_(mean.reshape(s.mean[0].shape))
                    s.scale[:] = [1.0]
                else:
                    j = s.fill
                    torch.linalg.vector_norm(h, 1, dims, dtype=torch.float32, out=s.act[j].view(view))
                    if s.mean is not None:
                        torch.sum(h, dims, dtype=torch.float32, out=s.mean[j].view(view))
                    if len(s.scale) > j:
                        s.scale[j] = 1.0 / count
                    else:
                        s.scale.append(1.0 / count)
                s.hooked = True

        return record

    # -- the method ---------------------------------------------------------------------------

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        self.last_event = {}
        if not self.states:
            return
        todo: list[tuple[_LayerState, torch.Tensor]] = []
        for s in self.states:
            if not s.hooked:
                continue
            s.hooked = False
            j = 0 if self.centered else s.fill
            for buf, out in zip(s.wout, s.layer.outgoing):
                w = out.module.weight
                dims = (0,) + tuple(range(2, w.dim())) if isinstance(out.module, _ConvNd) else (0,)
                torch.linalg.vector_norm(w, 1, dims, dtype=torch.float32, out=buf[j])
            if self.utility == "adaptable":
                w = s.layer.incoming.weight
                torch.linalg.vector_norm(w, 1, tuple(range(1, w.dim())), dtype=torch.float32, out=s.win[j])
            s.fill = j + 1
            s.t += 1
            eligible = s.eligible(self.maturity_threshold)
            s.eligible_sum += eligible
            credited = math.floor(self.replacement_rate * s.eligible_sum)
            n = min(credited - s.credited, eligible)
            s.credited = credited
            if n > 0 or s.fill == s.steps:
                self._fold(s)
            if n > 0:
                todo.append((s, self._select(s, s.ages(), n)))
        if todo:
            self._replace(todo)

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
