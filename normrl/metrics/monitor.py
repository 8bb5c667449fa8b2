"""PlasticityMonitor: plasticity metrics of a network every N updates, to TensorBoard.

Usage inside a training loop (this is what ``normrl.agents.PPO``/``DQN`` do)::

    monitor = PlasticityMonitor(net, every=1000, writer=SummaryWriter(logdir))
    ...
    optimizer.step()
    monitor.set_probe(batch_obs)              # first call keeps the probe batch
    monitor.after_update(env_steps, policy_entropy=entropy)

Every tag and its definition is listed in ``docs/metrics.md``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn
from torch.nn.modules.conv import _ConvNd

from normrl.metrics import functional as F
from normrl.metrics import model_stats as S
from normrl.utils.activations import ACTIVATION_TYPES

__all__ = ["PlasticityMonitor", "hidden_activation_layers", "ACTIVATION_METRICS", "WEIGHT_METRICS"]


#: Metrics computed on each hooked layer's activations for the probe batch.
ACTIVATION_METRICS = ("dormant_ratio", "active_fraction", "srank", "effective_rank", "stable_rank", "feature_norm")
#: Metrics computed on each Linear/Conv weight.
WEIGHT_METRICS = ("weight_norm", "distance_from_init", "grad_norm", "effective_lr")

_PREFIX = "plasticity"


def hidden_activation_layers(model: nn.Module, activations: Sequence[type] = ()) -> list[str]:
    """Names of the modules whose outputs are the hidden activations (default rule).

    In ``model.named_modules()`` (registration) order, an activation module (an instance
    of :data:`ACTIVATION_TYPES`: ReLU, Tanh, GELU, SELU, …, or of a class in
    ``activations``, e.g. CReLU) is a hidden layer when at
    least one ``Linear``/``Conv`` is registered before it *and* at least one after it.
    The first condition skips input transforms, the second skips output nonlinearities
    (e.g. a final Tanh of a deterministic policy); norm layers, dropout or flatten
    modules between the weight layer and the activation do not matter. Activations
    applied functionally in ``forward`` (``F.relu``) are not modules and cannot be
    found: pass ``layers=`` then.
    """
    order = list(model.named_modules())
    weight_idx = [i for i, (_, m) in enumerate(order) if isinstance(m, (nn.Linear, _ConvNd))]
    if not weight_idx:
        return []
    first, last = weight_idx[0], weight_idx[-1]
    kinds = ACTIVATION_TYPES + tuple(activations)
    return [name for i, (name, m) in enumerate(order) if isinstance(m, kinds) and first < i < last]


class PlasticityMonitor:
    """Computes plasticity metrics every ``every`` updates on a fixed probe batch.

    What is measured at a logging event (tags ``plasticity/<metric>/<layer>`` and
    ``plasticity/<metric>/all``; definitions in ``docs/metrics.md``):

    * on the activations of every hooked layer for the probe batch (one forward pass
      under ``torch.no_grad()`` with every module in eval mode, training flags restored
      after, so batch-dependent norms do not update their statistics and no RNG is
      consumed): :func:`~normrl.metrics.dormant_ratio` (``tau``),
      :func:`~normrl.metrics.active_fraction`, :func:`~normrl.metrics.srank`
      (δ = 0.01), :func:`~normrl.metrics.effective_rank`,
      :func:`~normrl.metrics.stable_rank`, :func:`~normrl.metrics.feature_norm`;
      ``all`` pools the units of every layer for ``dormant_ratio``/``active_fraction``
      (the network-wide fraction reported by ReDo) and is the mean over layers for the
      four matrix metrics;
    * on the weight of every ``Linear``/``Conv`` layer (output layer included):
      ``weight_norm`` ‖W‖, ``distance_from_init`` ‖W − W₀‖, ``grad_norm`` ‖∇W‖ (the
      gradients still present after the step), ``effective_lr`` ‖W_t − W_{t−1}‖ /
      ‖W_{t−1}‖ of the update just made; ``all`` treats all weights as one
      concatenated vector (global norms; effective LR = ‖ΔW_all‖/‖W_all‖);
    * ``plasticity/policy_entropy`` when ``after_update`` gets ``policy_entropy``.

    Cost control: the metrics are computed on the device and all scalars are stacked
    into one tensor that is moved to the host with a single ``.tolist()`` per logging
    event (:attr:`host_transfers` counts them). The singular values of all layers come
    from one batched eigensolver call on the probe's Gram matrices
    (:func:`~normrl.metrics.functional.batched_singular_values`, one call per distinct
    Gram size, usually one); on CUDA torch's solver checks convergence with a
    synchronization of its own per call, so an event synchronizes about twice, never
    once per layer; non-logging updates only increment a
    counter, except the update right before a logging one (update count ≡ ``every``−1
    mod ``every``), which copies the weights (``torch._foreach_copy_`` into reused
    buffers) so the logging update's ``ΔW`` is exact. The weights at construction are
    both the initial snapshot W₀ and the "before" of update 1.

    Args:
        model: the network (build the monitor right after initialization: W₀ is
            snapshotted here).
        every: log on every ``every``-th call of :meth:`after_update` [1000: at this
            interval the measured cost is well under 5% of PPO/DQN training time, see
            ``scripts/bench_monitor.py``].
        probe: the probe batch (observations in the form ``model`` takes) [None: set it
            later with :meth:`set_probe`; until then only weight metrics are logged].
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (anything with
            ``add_scalar(tag, value, step)``) [None: only return the values].
        tau: ReDo dormancy threshold [0.025].
        probe_size: rows of the probe kept [256].
        layers: module names whose outputs are the activations to measure, replacing
            the default rule of :func:`hidden_activation_layers` [None].
        forward: ``forward(model, probe)`` running the model on the probe [None:
            ``model(probe)``]; e.g. for policies whose ``__call__`` samples actions.
        srank_delta: δ of srank [0.01].

    Raises ``ValueError`` when no hidden activation layer is found (and ``layers`` is not
    given) or a name in ``layers`` is not a module of ``model``.
    """

    def __init__(
        self,
        model: nn.Module,
        every: int = 1000,
        probe: Optional[torch.Tensor] = None,
        writer: Any = None,
        tau: float = 0.025,
        probe_size: int = 256,
        layers: Optional[Sequence[str]] = None,
        forward: Optional[Callable[[nn.Module, torch.Tensor], Any]] = None,
        srank_delta: float = 0.01,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"PlasticityMonitor expects an nn.Module, got {type(model).__name__}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if not isinstance(probe_size, int) or isinstance(probe_size, bool) or probe_size < 1:
            raise ValueError(f"probe_size must be a positive int, got {probe_size!r}")
        if not isinstance(tau, (int, float)) or isinstance(tau, bool) or tau < 0:
            raise ValueError(f"tau must be a float >= 0, got {tau!r}")
        if not 0 <= srank_delta < 1:
            raise ValueError(f"srank_delta must be in [0, 1), got {srank_delta!r}")
        if writer is not None and not callable(getattr(writer, "add_scalar", None)):
            raise TypeError(f"writer must have add_scalar(tag, value, step), got {type(writer).__name__}")
        self.model = model
        self.every = every
        self.writer = writer
        self.tau = float(tau)
        self.probe_size = probe_size
        self.forward = forward
        self.srank_delta = float(srank_delta)
        named = dict(model.named_modules())
        if layers is None:
            self.layers = hidden_activation_layers(model)
            if not self.layers:
                raise ValueError(
                    f"no hidden activation module found in {type(model).__name__} (rule: an activation module "
                    "registered between two Linear/Conv layers); pass layers=[module names]"
                )
        else:
            layers = list(layers)
            missing = [n for n in layers if n not in named]
            if missing:
                raise ValueError(f"layers {missing} are not modules of the model; valid names: {sorted(n for n in named if n)}")
            if not layers:
                raise ValueError("layers must name at least one module")
            self.layers = layers
        self._modules = [named[n] for n in self.layers]
        self.weight_layers = S.weight_layers(model)
        self._weights = [m.weight for m in self.weight_layers.values()]
        self.initial = S.snapshot_weights(self.weight_layers)
        self._before = [w.detach().clone() for w in self._weights]
        self._before_update = 0
        self.num_updates = 0
        self.num_logs = 0
        self.host_transfers = 0
        self.probe: Optional[torch.Tensor] = None
        if probe is not None:
            self.set_probe(probe)

    # -- probe --------------------------------------------------------------------------
    def set_probe(self, obs: torch.Tensor, force: bool = False) -> None:
        """Keep a detached copy of the first ``probe_size`` rows of ``obs`` as the probe.

        Later calls are ignored (the probe stays fixed, so metrics are comparable across
        time) unless ``force=True``."""
        if self.probe is not None and not force:
            return
        if not isinstance(obs, torch.Tensor) or obs.dim() < 1 or obs.shape[0] == 0:
            raise ValueError(f"probe must be a non-empty tensor batch, got {getattr(obs, 'shape', type(obs).__name__)}")
        self.probe = obs[: self.probe_size].detach().clone()

    @property
    def next_update_logs(self) -> bool:
        """True when the next :meth:`after_update` call is a logging event."""
        return (self.num_updates + 1) % self.every == 0

    # -- the per-update call --------------------------------------------------------------
    def after_update(self, step: int, policy_entropy: Optional[torch.Tensor | float] = None) -> Optional[dict[str, float]]:
        """Call after every optimizer step (gradients still present).

        Args:
            step: the x-axis value for TensorBoard (env steps, usually).
            policy_entropy: the policy's mean entropy for this update (tensor or float),
                logged as ``plasticity/policy_entropy`` [None: not logged].

        Returns ``{tag: value}`` on a logging event (every ``every``-th call), else None.
        """
        self.num_updates += 1
        logged = None
        if self.num_updates % self.every == 0:
            logged = self._log(step, policy_entropy)
        if self.next_update_logs:
            self._snapshot_before()
        return logged

    def _snapshot_before(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self._before, [w.detach() for w in self._weights])
        self._before_update = self.num_updates

    # -- metrics ------------------------------------------------------------------------
    @torch.no_grad()
    def _activations(self) -> list[torch.Tensor]:
        captured: dict[int, torch.Tensor] = {}
        handles = []
        for i, m in enumerate(self._modules):
            def hook(_m, _inp, out, i=i):
                captured[i] = out[0] if isinstance(out, (tuple, list)) else out
            handles.append(m.register_forward_hook(hook))
        modes = [(m, m.training) for m in self.model.modules()]
        try:
            self.model.eval()
            if self.forward is None:
                self.model(self.probe)
            else:
                self.forward(self.model, self.probe)
        finally:
            for h in handles:
                h.remove()
            for m, mode in modes:
                m.training = mode
        missing = [self.layers[i] for i in range(len(self._modules)) if i not in captured]
        if missing:
            raise RuntimeError(f"layers {missing} were not called by the probe forward pass")
        return [captured[i] for i in range(len(self._modules))]

    def compute(self, policy_entropy: Optional[torch.Tensor | float] = None) -> tuple[list[str], torch.Tensor]:
        """All metrics now, as ``(tags, values)`` with ``values`` one float32 tensor on
        the device (no host transfer). The effective LR uses the last pre-update
        snapshot (exact only when called right after an update that followed it)."""
        names: list[str] = []
        values: list[torch.Tensor] = []

        def add(metric: str, layer: str, value: torch.Tensor) -> None:
            names.append(f"{_PREFIX}/{metric}/{layer}")
            values.append(value.float().reshape(()))

        if self.probe is not None:
            acts = self._activations()
            scores, rank_metrics = [], {"srank": [], "effective_rank": [], "stable_rank": [], "feature_norm": []}
            svs = F.batched_singular_values(acts)
            all_finite = []
            for name, a, sv in zip(self.layers, acts, svs):
                s = F.unit_scores(a)
                scores.append(s)
                per = {
                    "dormant_ratio": (s <= self.tau).float().mean(),
                    "active_fraction": (s > 0).float().mean(),
                    "srank": F.srank_from_singular_values(sv, self.srank_delta),
                    "effective_rank": F.effective_rank_from_singular_values(sv),
                    "stable_rank": F.stable_rank_from_singular_values(sv),
                    "feature_norm": F.feature_norm(a),
                }
                # non-finite features (a diverged network): the layer's metrics are NaN
                finite = torch.isfinite(a).all()
                all_finite.append(finite)
                per = {k: torch.where(finite, v.float(), float("nan")) for k, v in per.items()}
                for metric in ACTIVATION_METRICS:
                    add(metric, name, per[metric])
                for metric in rank_metrics:
                    rank_metrics[metric].append(per[metric].float())
            pooled, pooled_finite = torch.cat(scores), torch.stack(all_finite).all()
            add("dormant_ratio", "all", torch.where(pooled_finite, (pooled <= self.tau).float().mean(), float("nan")))
            add("active_fraction", "all", torch.where(pooled_finite, (pooled > 0).float().mean(), float("nan")))
            for metric, vals in rank_metrics.items():
                add(metric, "all", torch.stack(vals).mean())

        if self.weight_layers:
            per_weight = {
                "weight_norm": S.weight_norms(self.weight_layers),
                "distance_from_init": S.distance_from_init(self.weight_layers, self.initial),
                "grad_norm": S.grad_norms(self.weight_layers),
            }
            before = dict(zip(self.weight_layers, self._before))
            per_weight["effective_lr"] = S.effective_lr(self.weight_layers, before)
            deltas = {n: torch.linalg.vector_norm(w.detach().float() - before[n].float()) for n, w in zip(self.weight_layers, self._weights)}
            before_norms = {n: torch.linalg.vector_norm(b.float()) for n, b in before.items()}
            aggregate = {
                "weight_norm": S.global_norm(per_weight["weight_norm"]),
                "distance_from_init": S.global_norm(per_weight["distance_from_init"]),
                "grad_norm": S.global_norm(per_weight["grad_norm"]),
                "effective_lr": S.global_norm(deltas) / S.global_norm(before_norms).clamp_min(1e-30),
            }
            for metric in WEIGHT_METRICS:
                for layer, v in per_weight[metric].items():
                    add(metric, layer, v)
                add(metric, "all", aggregate[metric])

        if policy_entropy is not None:
            ent = policy_entropy if isinstance(policy_entropy, torch.Tensor) else torch.tensor(float(policy_entropy))
            names.append(f"{_PREFIX}/policy_entropy")
            values.append(ent.detach().float().mean().reshape(()).to(values[0].device if values else ent.device))
        if not values:
            return names, torch.zeros(0)
        return names, torch.stack([v.to(values[0].device) for v in values])

    def _log(self, step: int, policy_entropy) -> dict[str, float]:
        names, values = self.compute(policy_entropy)
        host = values.tolist()  # the one host transfer of this logging event
        self.host_transfers += 1
        self.num_logs += 1
        out = dict(zip(names, host))
        if self.writer is not None:
            for tag, v in out.items():
                self.writer.add_scalar(tag, v, step)
        return out

    # -- resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Counters, the initial weights W₀, the pre-update snapshot and the probe."""
        return {
            "version": 1,
            "every": self.every,
            "num_updates": self.num_updates,
            "num_logs": self.num_logs,
            "initial": {k: v.clone() for k, v in self.initial.items()},
            "before": [b.clone() for b in self._before],
            "before_update": self._before_update,
            "probe": None if self.probe is None else self.probe.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (the monitor must watch the same layers).
        ``every`` may differ from the saved one; the counters continue."""
        if set(state["initial"]) != set(self.initial):
            raise ValueError(f"saved monitor watched layers {sorted(state['initial'])}, this one {sorted(self.initial)}")
        if len(state["before"]) != len(self._before):
            raise ValueError("saved pre-update snapshot does not match this model's weight layers")
        self.num_updates = int(state["num_updates"])
        self.num_logs = int(state["num_logs"])
        for name, t in state["initial"].items():
            self.initial[name] = t.to(self.initial[name].device).clone()
        with torch.no_grad():
            for buf, t in zip(self._before, state["before"]):
                buf.copy_(t)
        self._before_update = int(state["before_update"])
        probe = state["probe"]
        if probe is not None and self._weights:
            probe = probe.to(self._weights[0].device)
        self.probe = None if probe is None else probe.clone()

    def __repr__(self) -> str:
        return (
            f"PlasticityMonitor(every={self.every}, tau={self.tau}, probe_size={self.probe_size}, "
            f"layers={self.layers}, weight_layers={list(self.weight_layers)})"
        )
