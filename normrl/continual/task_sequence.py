"""Train one network on a sequence of supervised tasks and measure, task by task, how well
it still learns: the learner behind the plasticity suite (``normrl plasticity``).

For each task ``t`` of a :class:`~normrl.data.problems.ContinualProblem`:

1. the task hooks ``on_task_start(t)`` run on the network's modules and the
   interventions (:func:`~normrl.continual.call_task_hooks`);
2. ``epochs`` passes over the task's examples in minibatches of ``batch_size``
   (shuffled per epoch by a generator seeded from ``(seed, "order", t)``, or in stream
   order for a stream problem), each a step of: forward, the loss (cross-entropy, or
   mean squared error for regression) plus the interventions' penalty, backward, the
   optimizer's step (NaP's projection inside it for a NaP norm), the interventions'
   ``after_step``;
3. at the task's last update the plasticity metrics are measured on a fixed probe
   batch (:class:`~normrl.metrics.PlasticityMonitor`), then the end-of-task accuracy
   and loss on all the task's examples, then ``on_task_end(t)`` runs.

Metrics per task (``summary["tasks"][t]``):

* ``train_accuracy`` / ``train_loss``: on all of the task's examples after its last
  update (training accuracy: memorization for random labels); ``train_accuracy`` is
  None for regression;
* ``online_accuracy`` / ``online_loss``: the mean over the task's updates of the
  accuracy / loss on each minibatch *before* its update (Kumar et al. 2023, arXiv
  2308.11958, "average online accuracy"; for a batch-1 stream the online loss is the
  squared error Dohare et al. 2024 plot);
* plasticity metrics on the probe (the first ``probe_size`` examples of the task, in
  the task's input form): ``dormant_ratio`` (τ-dormant fraction of all hidden units,
  Sokar et al. 2023), ``active_fraction``, ``srank`` (δ = 0.01), ``effective_rank``,
  ``stable_rank``, ``feature_norm`` (means over hidden layers), ``weight_norm`` (all
  weight matrices as one vector), ``output_weight_norm`` (the output layer's),
  ``distance_from_init``, ``effective_lr`` (‖ΔW‖/‖W‖ of the task's last update) —
  definitions in docs/metrics.md.

Interventions that score units on a batch (ReDo) get the same probe at every task
start (``set_probe``) instead of the last training minibatch, which is one example in a
batch-1 stream and would make "dormant" mean "inactive on that example".

Two references make the numbers interpretable: ``fresh_per_task=True`` is the
**oracle**, a new network and a new optimizer (and new interventions) at every task;
its network for task ``t`` is drawn from ``(seed, "init", t)``, so its task 0 is
bit-for-bit the continual network's task 0, and every later task is what a network
that lost nothing would do on exactly the same data and minibatch order. The plain
network is ``norm="none"`` with no intervention.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.continual.hooks import call_task_hooks
from normrl.data.problems.base import ContinualProblem, derive_seed
from normrl.metrics.monitor import ACTIVATION_METRICS, WEIGHT_METRICS, PlasticityMonitor, hidden_activation_layers
from normrl.metrics.model_stats import weight_layers
from normrl.networks.mlp import MLP
from normrl.normalization.projected_optimizer import build_optimizer
from normrl.normalization.registry import is_nap
from normrl.plasticity.crelu import CReLU, crelu_hidden_widths
from normrl.plasticity.spec import build_interventions
from normrl.plasticity.units import quiet_eval

__all__ = ["TaskSequenceConfig", "train_task_sequence", "build_learner", "PROBE_METRICS"]

OPTIMIZERS = ("adam", "sgd")
#: Plasticity metrics recorded per task (the monitor's network-wide values).
PROBE_METRICS = ACTIVATION_METRICS + tuple(m for m in WEIGHT_METRICS if m != "grad_norm")


@dataclass
class TaskSequenceConfig:
    """Settings of one run on a task sequence. ``None`` means "the problem's protocol"
    (:attr:`~normrl.data.problems.ContinualProblem.protocol`).

    Attributes:
        norm: registered norm inserted before every hidden activation [``"none"``];
            a NaP norm (``"nap"``) also projects the hidden weights after every step.
        hidden: hidden widths [None].
        activation: hidden activation [None]; ``"crelu"`` uses the widths of
            ``crelu_rule`` (:func:`~normrl.plasticity.crelu_hidden_widths`).
        crelu_rule: ``"equal_params"`` [default] or ``"equal_width"``.
        optimizer: ``"adam"`` or ``"sgd"`` [None].
        lr: learning rate [None].
        momentum: SGD momentum [0].
        betas: Adam's betas [(0.9, 0.999)].
        weight_decay: the optimizer's (coupled) weight decay [0].
        batch_size, epochs, shuffle: minibatch size, passes per task, reshuffling per
            epoch [None].
        interventions: plasticity interventions as spec strings (``"redo:tau=0.1"``;
            :mod:`normrl.plasticity`) [()].
        nap_every: project every ``nap_every`` steps under a NaP norm [1].
        nap_options: extra :class:`~normrl.normalization.NaPProjector` keywords
            (``{"per_row": True}``) [{}].
        fresh_per_task: the oracle: new network, optimizer and interventions at
            every task [False].
        seed: seeds the network's initialization, the minibatch order and the
            interventions (the problem has its own seed) [0].
        probe_size: examples in the plasticity probe [256].
        tau: dormancy threshold [0.025].
        eval_batch_size: rows per forward pass of the end-of-task evaluation [4096].
    """

    norm: str = "none"
    hidden: Optional[tuple[int, ...]] = None
    activation: Optional[str] = None
    crelu_rule: str = "equal_params"
    optimizer: Optional[str] = None
    lr: Optional[float] = None
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    batch_size: Optional[int] = None
    epochs: Optional[int] = None
    shuffle: Optional[bool] = None
    interventions: tuple[str, ...] = ()
    nap_every: int = 1
    nap_options: dict = field(default_factory=dict)
    fresh_per_task: bool = False
    seed: int = 0
    probe_size: int = 256
    tau: float = 0.025
    eval_batch_size: int = 4096

    def resolved(self, problem: ContinualProblem) -> "TaskSequenceConfig":
        """A copy with every ``None`` replaced by the problem's protocol value, checked."""
        proto = problem.protocol
        cfg = replace(
            self,
            hidden=tuple(self.hidden if self.hidden is not None else proto.hidden),
            activation=self.activation or proto.activation,
            optimizer=(self.optimizer or proto.optimizer).lower(),
            lr=float(self.lr if self.lr is not None else proto.lr),
            batch_size=self.batch_size if self.batch_size is not None else proto.batch_size,
            epochs=self.epochs if self.epochs is not None else proto.epochs,
            shuffle=self.shuffle if self.shuffle is not None else proto.shuffle,
            interventions=tuple(self.interventions),
            betas=tuple(self.betas),
            nap_options=dict(self.nap_options),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """``ValueError`` naming the field and the valid values for a bad setting."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (isinstance(self.lr, float) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("batch_size", "epochs", "nap_every", "probe_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive ints, got {self.hidden!r}")
        if self.nap_options and not is_nap(self.norm):
            raise ValueError(f"nap_options apply to a NaP norm only, got norm={self.norm!r}")
        if isinstance(self.interventions, str):
            raise ValueError("interventions must be a sequence of spec strings, not one string")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TaskSequenceConfig":
        """The inverse of :meth:`to_dict` (unknown keys are a ``ValueError``)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TaskSequenceConfig fields {unknown}; valid: {sorted(names)}")
        data = dict(data)
        for key in ("hidden", "betas", "interventions"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def _hidden_widths(cfg: TaskSequenceConfig, problem: ContinualProblem) -> tuple[int, ...]:
    if cfg.activation.lower() == "crelu":
        return crelu_hidden_widths(cfg.hidden, cfg.crelu_rule, in_dim=problem.in_dim, out_dim=problem.out_dim)
    return tuple(cfg.hidden)


def build_learner(problem: ContinualProblem, cfg: TaskSequenceConfig, init_seed: int, intervention_seed: int):
    """``(model, optimizer, interventions)`` for ``problem`` under the resolved ``cfg``:
    the MLP initialized under ``torch.manual_seed(init_seed)`` (the global RNG is
    restored afterwards), its optimizer (wrapped in NaP's projection for a NaP norm)
    and the attached interventions."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = MLP(problem.in_dim, problem.out_dim, _hidden_widths(cfg, problem), norm=cfg.norm, activation=cfg.activation)
    if cfg.optimizer == "adam":
        cls, kwargs = torch.optim.Adam, dict(lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    else:
        cls, kwargs = torch.optim.SGD, dict(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    optimizer = build_optimizer(model, cfg.norm, cls, kwargs, nap_every=cfg.nap_every, nap_options=cfg.nap_options)
    interventions = build_interventions(list(cfg.interventions), seed=intervention_seed)
    interventions.attach(model, optimizer)
    return model, optimizer, interventions


def _loss_fn(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return F.cross_entropy if kind == "classification" else F.mse_loss


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, chunk: int) -> tuple[Optional[float], float]:
    loss_fn = _loss_fn(kind)
    loss_sum, correct = torch.zeros(()), torch.zeros(())
    with quiet_eval(model):
        for start in range(0, x.shape[0], chunk):
            out = model(x[start:start + chunk])
            target = y[start:start + chunk]
            loss_sum += loss_fn(out, target, reduction="sum") / (1 if kind == "classification" else out.shape[1])
            if kind == "classification":
                correct += (out.argmax(dim=1) == target).sum()
    n = x.shape[0]
    return (float(correct) / n if kind == "classification" else None), float(loss_sum) / n


def _probe_metrics(logged: dict, model: nn.Module) -> dict[str, float]:
    out = {name: logged.get(f"plasticity/{name}/all") for name in PROBE_METRICS}
    layers = list(weight_layers(model))
    out["output_weight_norm"] = logged.get(f"plasticity/weight_norm/{layers[-1]}") if layers else None
    return out


def train_task_sequence(problem: ContinualProblem, config: Optional[TaskSequenceConfig] = None, *, writer: Any = None,
                        progress: Optional[Callable[[dict], None]] = None) -> dict:
    """Train on every task of ``problem`` in turn (see the module docstring).

    Args:
        problem: the task sequence.
        config: the run's settings [``TaskSequenceConfig()``: the plain network under
            the problem's protocol].
        writer: a TensorBoard ``SummaryWriter`` (anything with ``add_scalar``) [None]:
            per-task metrics under ``task/<metric>`` (x = task index) and the monitor's
            ``plasticity/*`` tags (x = updates so far).
        progress: called with each task's record when the task ends [None].

    Returns ``{"tasks": [per-task records], "steps_per_task", "train_seconds",
    "cpu_seconds", "config" (resolved), "problem", "kind"}``.
    """
    cfg = (config or TaskSequenceConfig()).resolved(problem)
    kind = problem.kind
    loss_fn = _loss_fn(kind)
    n = problem.task_size()
    steps_per_task = cfg.epochs * math.ceil(n / cfg.batch_size)
    records: list[dict] = []
    model = optimizer = interventions = monitor = None
    global_step = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for t in range(problem.num_tasks):
        task_t0 = time.perf_counter()
        data = problem.task(t)
        if len(data) != n:
            raise ValueError(f"task {t} has {len(data)} examples, task 0 had {n}: the learner needs equal task sizes")
        if model is None or cfg.fresh_per_task:
            first = model is None
            model, optimizer, interventions = build_learner(
                problem, cfg, derive_seed(cfg.seed, "init", t),
                cfg.seed if first else derive_seed(cfg.seed, "interventions", t))
            monitor = PlasticityMonitor(model, every=steps_per_task, tau=cfg.tau, probe_size=cfg.probe_size,
                                        layers=hidden_activation_layers(model, activations=(CReLU,)), writer=writer)
            net_step = 0
        call_task_hooks([model, interventions], "on_task_start", t)
        if set(weight_layers(model)) != set(monitor.weight_layers):  # a structural intervention changed the net
            monitor = PlasticityMonitor(model, every=steps_per_task, tau=cfg.tau, probe_size=cfg.probe_size,
                                        layers=hidden_activation_layers(model, activations=(CReLU,)), writer=writer)
        monitor.set_probe(data.x, force=True)
        for iv in interventions:
            if callable(getattr(iv, "set_probe", None)):
                iv.set_probe(data.x[:cfg.probe_size])
        order_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "order", t))
        online_loss = torch.zeros(())
        online_correct = torch.zeros(())
        logged: Optional[dict] = None
        model.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=order_gen) if cfg.shuffle else None
            for start in range(0, n, cfg.batch_size):
                if order is None:
                    xb, yb = data.x[start:start + cfg.batch_size], data.y[start:start + cfg.batch_size]
                else:
                    idx = order[start:start + cfg.batch_size]
                    xb, yb = data.x[idx], data.y[idx]
                out = model(xb)
                loss = loss_fn(out, yb)
                with torch.no_grad():
                    online_loss += loss.detach() * xb.shape[0]
                    if kind == "classification":
                        online_correct += (out.argmax(dim=1) == yb).sum()
                if interventions:
                    loss = loss + interventions.penalty()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                net_step += 1
                global_step += 1
                if interventions:
                    interventions.after_step(net_step)
                result = monitor.after_update(global_step)
                if result is not None:
                    logged = result
        examples = n * cfg.epochs
        acc, end_loss = _evaluate(model, data.x, data.y, kind, cfg.eval_batch_size)
        record = {
            "task": t,
            "train_accuracy": acc,
            "train_loss": end_loss,
            "online_accuracy": float(online_correct) / examples if kind == "classification" else None,
            "online_loss": float(online_loss) / examples,
            **_probe_metrics(logged or {}, model),
            "seconds": time.perf_counter() - task_t0,
        }
        call_task_hooks([model, interventions], "on_task_end", t)
        records.append(record)
        if writer is not None:
            for key, value in record.items():
                if key != "task" and value is not None:
                    writer.add_scalar(f"task/{key}", value, t)
        if progress is not None:
            progress(record)
    return {
        "tasks": records,
        "steps_per_task": steps_per_task,
        "train_seconds": time.perf_counter() - wall0,
        "cpu_seconds": time.process_time() - cpu0,
        "config": cfg.to_dict(),
        "problem": {"name": problem.name, "kind": kind, **problem.config()},
        "kind": kind,
    }
