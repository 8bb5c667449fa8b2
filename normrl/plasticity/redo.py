"""ReDo: recycle dormant units (Sokar, Agarwal, Castro & Evci, "The Dormant Neuron
Phenomenon in Deep Reinforcement Learning", ICML 2023, arXiv 2302.12902).

Exact variant. Every ``every`` optimizer steps (or at every task end with
``at="task_end"``):

1. **Score** every hidden unit on a batch ``D``: ``s_i = E_D|h_i| / ((1/H) Σ_k E_D|h_k|)``
   (the mean absolute activation, over the batch and the positions of a conv channel,
   divided by the layer's mean; :func:`normrl.metrics.functional.unit_scores`, the score
   ``dormant_ratio`` and the plasticity monitor use). A unit is τ-dormant when
   ``s_i ≤ τ``. All layers are scored on one forward pass before anything changes.
2. **Recycle** every τ-dormant unit (the units of all layers at once):

   * its incoming weights (its row; a conv filter) become a fresh draw from the layer's
     own initializer (``reset_parameters()`` of a copy of the layer under an RNG seeded
     from this intervention's generator; PyTorch's default for ``Linear``/``Conv``);
   * its incoming bias becomes **0** (the reference code sets the bias to zeros);
   * its outgoing weights become **0** in every layer reading it (all of them: an
     actor-critic trunk feeding both heads has both heads' columns zeroed; a conv channel
     behind a ``Flatten`` has its whole column block ``[c·H·W, (c+1)·H·W)`` zeroed);
   * with a norm layer between the weight layer and the activation, that norm's per-unit
     parameters and statistics go back to a fresh norm's (gain 1, offset 0, running mean
     0, running variance 1). The paper's networks have no norm layers, so it does not
     say; this is what the continual-backprop authors' layer form does
     (``cbp_linear.py`` resets LN/BN gain, offset and BN statistics of replaced units);
   * the optimizer state of exactly those rows, bias entries, norm entries and
     columns is zeroed (Adam's ``exp_avg``/``exp_avg_sq``; SGD's momentum), all other
     entries untouched; Adam's per-tensor ``step`` is kept, as in the reference code
     (:mod:`normrl.plasticity.optim_state` explains the consequence).

   Because the outgoing weights are zeroed after every re-initialization, the network's
   output right after a reset is unchanged when the recycled units were *dead* (zero on
   the whole batch); a τ-dormant unit with small nonzero activations changes the output
   by its former contribution (``W_out[:, i]·h_i``), which is small by definition. With a
   LayerNorm, RMSNorm or GroupNorm between (normalization *across* units, e.g. NaP's
   ``Linear -> LayerNorm -> ReLU``) the output is not preserved: the recycled unit's new
   pre-activation enters the mean and variance that normalize the *other* units of its
   layer. A BatchNorm normalizes each unit on its own and keeps the output unchanged.
   The output layer is never recycled (it feeds no weight layer); the hidden units are
   found by :func:`~normrl.plasticity.units.trace_hidden_units`, which warns once about
   every activation it cannot trace (residual connections, shared modules) and leaves
   those alone.

The batch ``D``: by default the input of the most recent training forward of the
attached model (its first ``probe_size`` rows; captured by a forward pre-hook, no copy),
i.e. the batch of the update just made; or the batch given to :meth:`ReDo.set_probe`.
The scoring forward runs under ``torch.no_grad()`` with every module in **eval mode**
(training flags restored after) and the global RNG forked, exactly like
:class:`~normrl.metrics.PlasticityMonitor`: BatchNorm/AdaB²N statistics are not updated
by the extra pass, dropout is off, the training run's RNG is not consumed, and ReDo
recycles exactly the units the monitor reports as dormant on the same batch. For
networks without batch-dependent norms or dropout, train and eval mode give the same
scores.

Defaults: ``every=1000`` updates and ``tau=0.025``, the settings of the reimplementation
``timoklein/redo`` (``redo_check_interval=1000``; ``redo_tau=0.025``, noted there as the
value for the default replay ratio and 0.1 otherwise; Plasticine also uses 0.025), and
``probe_size=256`` (Dopamine ``labs/redo``'s ``batch_size_statistics``). The paper's own
hyperparameter table could not be read for this implementation; Dopamine's code leaves
the period to its gin configurations (``reset_period``) and defaults to ``τ = 0`` (dead
units only). For a high replay ratio use ``redo:tau=0.1``.

Plasticine (``RLE-Foundation/Plasticine``, ``plasticine/c51_atari_base.py``,
``ppo_continual_procgen_base.py``, ``ppo_continual_dmc_base.py``, ``plasticine_redo``)
differs: it passes no optimizer, so Adam's moments of recycled units are never cleared;
it *redraws* the recycled units' biases (``uniform(±1/√fan_in)``) instead of zeroing
them; the C51 and DMC agents score ``F.relu`` of each Linear/Conv *output*, i.e. before
the LayerNorm that the C51 encoder's LayerNorm variant puts there, so a LayerNorm network
is scored on the wrong quantity; and in the Procgen agent the last encoder layer's
outgoing weights are zeroed only in the actor head (its link list names ``actor``),
although the critic reads the same units (``self.critic(hidden)``).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from normrl.metrics.functional import unit_scores
from normrl.plasticity.base import STAGE_RESET, make_generator
from normrl.plasticity.registry import register_intervention
from normrl.plasticity.trigger import Trigger, TriggeredHooks
from normrl.plasticity.unit_reset import UnitResetIntervention, rows
from normrl.plasticity.units import quiet_eval

__all__ = ["ReDo"]


@register_intervention("redo", paper="Sokar et al. 2023, arXiv 2302.12902", description="recycle τ-dormant units every k updates: fresh incoming weights, zero bias and outgoing weights, zero their optimizer state")
class ReDo(TriggeredHooks, UnitResetIntervention):
    """Recycling dormant units (see the module docstring for the exact variant).

    Args:
        tau: dormancy threshold on the unit score, a unit with ``s_i <= tau`` is
            recycled [0.025].
        every: recycle after every ``every``-th optimizer step [1000].
        at: ``"task_end"`` to recycle at every task end instead of periodically [None].
        probe_size: rows of the batch used for scoring [256].
        seed: seed of the generator of the fresh initializations [0].
        init: ``init(layer)`` re-initializing a copy of an incoming layer in place
            [None: ``layer.reset_parameters()``] (Python only).
        forward: ``forward(model, x)`` running the model on the batch [None: ``model(x)``]
            (Python only).

    ``last_event`` after a recycling step: ``{"reset_units/<incoming layer>": n}`` for
    every layer with ``n > 0`` recycled units (``{}`` when none).
    """

    order = STAGE_RESET
    per_step = False

    def __init__(
        self,
        tau: float = 0.025,
        every: Optional[int] = None,
        at: Optional[str] = None,
        probe_size: int = 256,
        seed: int = 0,
        init: Optional[Callable[[nn.Module], Any]] = None,
        forward: Optional[Callable[[nn.Module, Any], Any]] = None,
    ) -> None:
        super().__init__(init=init, forward=forward)
        if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not tau >= 0:
            raise ValueError(f"tau must be a float >= 0, got {tau!r}")
        if not isinstance(probe_size, int) or isinstance(probe_size, bool) or probe_size < 1:
            raise ValueError(f"probe_size must be a positive int, got {probe_size!r}")
        self.tau = float(tau)
        self.trigger = Trigger(every, at, default_every=1000)
        self.probe_size = probe_size
        self.generator = make_generator(seed)
        self._warned_no_input = False

    # -- the method ------------------------------------------------------------------------

    def scores(self) -> dict[str, torch.Tensor]:
        """``{incoming layer name: unit scores (units,)}`` on the current batch (traces
        the network first if needed; empty when there is no batch yet)."""
        if not self.ensure_traced() or not self.layers:
            return {}
        model = self._require_attached()
        x = rows(self._input(), self.probe_size)
        acts: dict[int, torch.Tensor] = {}

        def keep(i):
            def hook(module, inputs, output):
                acts[i] = output
            return hook

        handles = [layer.activation.register_forward_hook(keep(i)) for i, layer in enumerate(self.layers)]
        self._busy = True
        try:
            with quiet_eval(model, x):
                if self.forward is not None:
                    self.forward(model, x)
                elif isinstance(x, tuple):
                    model(*x)
                else:
                    model(x)
        finally:
            self._busy = False
            for h in handles:
                h.remove()
        out = {}
        for i, layer in enumerate(self.layers):
            a = acts[i]
            out[layer.name] = unit_scores(a if layer.channel_dim == 1 else a.movedim(-1, 1))
        return out

    @torch.no_grad()
    def apply(self) -> None:
        """One recycling step now: score every hidden unit and recycle the τ-dormant ones."""
        self.last_event = {}
        if self._input() is None:
            if not self._warned_no_input:
                self._warned_no_input = True
                warnings.warn("redo: no training forward of the attached model was seen and no probe was set "
                              "(set_probe(batch)); nothing is recycled", stacklevel=2)
            return
        scores = self.scores()
        if not scores:
            return
        units = [(scores[layer.name] <= self.tau).nonzero().squeeze(1) for layer in self.layers]
        counts = [int(u.numel()) for u in units]  # one host sync per recycling step
        self.replace_units(self.layers, units)
        self.last_event = {f"reset_units/{layer.name}": float(n) for layer, n in zip(self.layers, counts) if n > 0}

    # -- checkpointing --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The generator state and the probe set with :meth:`set_probe` (None when the
        captured training input is used)."""
        state = super().state_dict()
        probe = self._probe
        state["probe"] = list(probe) if isinstance(probe, tuple) else probe
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        probe = state.get("probe")
        self._probe = tuple(probe) if isinstance(probe, list) else probe

    def extra_repr(self) -> str:
        return f"tau={self.tau}, {self.trigger!r}, probe_size={self.probe_size}"
