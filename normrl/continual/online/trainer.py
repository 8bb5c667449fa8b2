"""Online continual-learning trainer: the protocol AdaB²N was shown on.

One pass over a class-split stream (:class:`~normrl.data.SplitDataset`), tasks in order.
Every step takes ``batch_size`` new samples from the stream plus, once the buffer is not
empty, ``replay_batch_size`` samples per replay draw from a reservoir buffer; the stream
and replay samples go through the model in **one** forward pass (batch-dependent norms
see them jointly) with each sample's task id given to AdaB²N layers
(:func:`~normrl.normalization.layers.adab2n.adab2n_task_ids`); the method's loss (ER,
ER-ACE, DER++) plus ``adab2n_lambda`` times the AdaB²N auxiliary loss is minimized by
SGD, wrapped in the NaP projection for NaP networks (``norm="nap"``, projected every
``nap_every`` steps, as in the agents). The stream batch is then offered to the
reservoir. Task boundaries call ``on_task_start`` / ``on_task_end`` on every module
that has them (:func:`normrl.continual.call_task_hooks`).

After each task every task's test set is evaluated, class-incremental (argmax over all
classes) and task-incremental (argmax over the task's classes), filling the accuracy
matrices. Training is identical for both scenarios; ``scenario`` picks the headline.

Defaults follow the AdaB²N protocol: batch 10 + replay 10, SGD lr 0.03 (no momentum),
buffer 500, one epoch, reduced ResNet-18 (nf=20); DER++ α=0.1, β=0.5.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from normrl.continual.hooks import call_task_hooks
from normrl.continual.metrics import average_forgetting, backward_transfer, final_average_accuracy
from normrl.continual.online.buffer import ReservoirBuffer
from normrl.continual.online.methods import METHODS, ReplayBatch
from normrl.data.split import SplitDataset
from normrl.normalization.layers.adab2n import adab2n_aux_loss, adab2n_layers, adab2n_task_ids
from normrl.normalization.projected_optimizer import build_optimizer
from normrl.normalization.registry import norm_name


@dataclass
class OnlineCLConfig:
    """Settings of one online continual-learning run (every default is the protocol's).

    Attributes:
        method: ``"er"``, ``"er_ace"`` or ``"derpp"`` ["er_ace"].
        norm: registry norm of the ResNet-18 ["adab2n"].
        buffer_size: reservoir capacity [500].
        batch_size: new stream samples per step [10].
        replay_batch_size: samples per replay draw [10].
        lr: SGD learning rate [0.03].
        epochs: passes over each task's stream [1: online].
        nf: ResNet-18 width [20].
        derpp_alpha, derpp_beta: DER++ loss weights [0.1, 0.5].
        adab2n_lambda: λ of the AdaB²N auxiliary loss [1.0; paper grid 0.01..10].
        norm_kwargs: extra keywords for every norm layer, e.g. ``{"kappa": 0.4}`` [{}].
        eval_batch_size: test batch size [256].
        nap_every: with a NaP norm, project after every ``nap_every`` SGD steps [1].
        interventions: plasticity interventions as spec strings (``"redo:every=500"``;
            :mod:`normrl.plasticity`), seeded from ``seed``: penalty added to the loss,
            ``after_step`` after every SGD step, task hooks at task boundaries [()].
        seed: seeds the model init, stream order and buffer [0].
    """

    method: str = "er_ace"
    norm: str = "adab2n"
    buffer_size: int = 500
    batch_size: int = 10
    replay_batch_size: int = 10
    lr: float = 0.03
    epochs: int = 1
    nf: int = 20
    derpp_alpha: float = 0.1
    derpp_beta: float = 0.5
    adab2n_lambda: float = 1.0
    norm_kwargs: dict = field(default_factory=dict)
    eval_batch_size: int = 256
    nap_every: int = 1
    interventions: tuple = ()
    seed: int = 0

    def validate(self) -> None:
        """ValueError naming the valid choices for any bad setting."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        norm_name(self.norm)  # ValueError listing the registered norms
        for name in ("buffer_size", "batch_size", "replay_batch_size", "epochs", "nf", "eval_batch_size", "nap_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        for name in ("lr", "derpp_alpha", "derpp_beta", "adab2n_lambda"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        from normrl.plasticity.spec import parse_intervention_spec

        for spec in self.interventions:
            parse_intervention_spec(spec)  # ValueError naming the valid names / options


class OnlineCLTrainer:
    """Runs :class:`OnlineCLConfig` on a :class:`SplitDataset` stream.

    Args:
        data: the stream.
        config: the settings [OnlineCLConfig()].
        model: a classifier over ``data.num_classes`` [None: ``ResNet18`` with
            ``config.norm``, ``config.nf`` and the data's channel count].
        writer: a TensorBoard ``SummaryWriter`` [None: no logging].
        progress: called with the number of stream samples consumed after every step [None].
    """

    def __init__(self, data: SplitDataset, config: OnlineCLConfig | None = None, *, model: nn.Module | None = None, writer=None, progress: Callable[[int], None] | None = None):
        self.config = config or OnlineCLConfig()
        self.config.validate()
        self.data = data
        self.device = data.device
        torch.manual_seed(self.config.seed)
        if model is None:
            from normrl.networks.resnet import ResNet18

            model = ResNet18(data.num_classes, norm=self.config.norm, nf=self.config.nf, in_channels=data.image_shape[0], norm_kwargs=self.config.norm_kwargs)
        self.model = model.to(self.device)
        self.optimizer = build_optimizer(self.model, self.config.norm, torch.optim.SGD, {"lr": self.config.lr},
                                         self.config.nap_every)
        self.interventions = None
        if self.config.interventions:
            from normrl.plasticity import build_interventions

            self.interventions = build_interventions(self.config.interventions, seed=self.config.seed)
            self.interventions.attach(self.model, self.optimizer)
        self.loss_fn, self.n_draws = METHODS[self.config.method]
        self.buffer = ReservoirBuffer(self.config.buffer_size, data.image_shape, num_logits=data.num_classes if self.config.method == "derpp" else 0, device=self.device, seed=self.config.seed)
        self.has_adab2n = bool(adab2n_layers(self.model))
        self.writer = writer
        self.progress = progress
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.aug_generator = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.step_count = 0
        self.acc_class_il = torch.zeros(data.n_tasks, data.n_tasks)
        self.acc_task_il = torch.zeros(data.n_tasks, data.n_tasks)

    # ------------------------------------------------------------------ training
    def train_step(self, images: torch.Tensor, labels: torch.Tensor, task: int) -> torch.Tensor:
        """One update on a stream batch (uint8 images, remapped labels); returns the loss."""
        cfg, data = self.config, self.data
        n = images.shape[0]
        tasks = torch.full((n,), task, dtype=torch.long, device=self.device)
        parts_x, parts_y, parts_t, sizes = [images], [labels], [tasks], []
        stored = None
        if len(self.buffer) > 0:
            for draw in range(self.n_draws):
                idx = self.buffer.sample(cfg.replay_batch_size)
                parts_x.append(self.buffer.images[idx])
                parts_y.append(self.buffer.labels[idx])
                parts_t.append(self.buffer.tasks[idx])
                sizes.append(idx.shape[0])
                if draw == 0 and self.buffer.logits is not None:
                    stored = self.buffer.logits[idx]
        x = data.preprocess(torch.cat(parts_x), train=True, generator=self.aug_generator)
        batch = ReplayBatch(torch.cat(parts_y), n, tuple(sizes), task, data.classes_per_task, stored)
        self.model.train()
        with adab2n_task_ids(self.model, torch.cat(parts_t)):
            logits = self.model(x)
        loss = self.loss_fn(logits, batch, alpha=cfg.derpp_alpha, beta=cfg.derpp_beta)
        if self.has_adab2n and cfg.adab2n_lambda:
            loss = loss + cfg.adab2n_lambda * adab2n_aux_loss(self.model)
        if self.interventions is not None:
            loss = loss + self.interventions.penalty()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.interventions is not None:
            self.interventions.after_step(self.step_count + 1)
        self.buffer.add(images, labels, tasks, logits[:n].detach() if self.buffer.logits is not None else None)
        self.step_count += 1
        return loss.detach()

    def _hook_roots(self) -> list:
        return [self.model] if self.interventions is None else [self.model, self.interventions]

    def train_task(self, task: int) -> None:
        """One pass (``epochs`` passes) over ``task``'s stream in a seeded random order."""
        cfg, data = self.config, self.data
        call_task_hooks(self._hook_roots(), "on_task_start", task)
        indices = data.train_indices(task).cpu()
        for _ in range(cfg.epochs):
            order = indices[torch.randperm(len(indices), generator=self.generator)].to(self.device)
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                loss = self.train_step(data.train_images[idx], data.train_labels[idx], task)
                if self.writer is not None and self.step_count % 50 == 0:
                    self.writer.add_scalar("train/loss", loss.item(), self.step_count)
                if self.progress is not None:
                    self.progress(idx.shape[0])
        call_task_hooks(self._hook_roots(), "on_task_end", task)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Class-IL and task-IL accuracy on every task's test set (two (T,) tensors)."""
        data = self.data
        self.model.eval()
        cil, til = torch.zeros(data.n_tasks), torch.zeros(data.n_tasks)
        k = data.classes_per_task
        for t in range(data.n_tasks):
            idx = data.test_indices(t)
            correct_c = correct_t = 0
            for start in range(0, len(idx), self.config.eval_batch_size):
                j = idx[start:start + self.config.eval_batch_size]
                logits = self.model(data.preprocess(data.test_images[j]))
                y = data.test_labels[j]
                correct_c += (logits.argmax(1) == y).sum()
                correct_t += (logits[:, t * k:(t + 1) * k].argmax(1) + t * k == y).sum()
            cil[t] = float(correct_c) / max(len(idx), 1)
            til[t] = float(correct_t) / max(len(idx), 1)
        return cil, til

    def run(self) -> dict:
        """Train every task in order, evaluating after each; returns the summary."""
        start = time.time()
        for task in range(self.data.n_tasks):
            self.train_task(task)
            cil, til = self.evaluate()
            self.acc_class_il[task], self.acc_task_il[task] = cil, til
            if self.writer is not None:
                for j in range(self.data.n_tasks):
                    self.writer.add_scalar(f"eval/class_il/task_{j}", cil[j].item(), task)
                    self.writer.add_scalar(f"eval/task_il/task_{j}", til[j].item(), task)
                self.writer.add_scalar("eval/class_il/average_seen", cil[:task + 1].mean().item(), task)
                self.writer.add_scalar("eval/task_il/average_seen", til[:task + 1].mean().item(), task)
        summary = self.summary()
        summary["wall_seconds"] = time.time() - start
        if self.writer is not None:
            for key in ("final_accuracy", "forgetting", "backward_transfer"):
                for scen in ("class_il", "task_il"):
                    self.writer.add_scalar(f"final/{scen}/{key}", summary[scen][key], self.data.n_tasks - 1)
            self.writer.flush()
        return summary

    def summary(self) -> dict:
        """Accuracy matrices and the metrics of both scenarios, plus the config."""
        out = {"config": asdict(self.config), "dataset": self.data.name, "n_tasks": self.data.n_tasks, "scenario": self.data.scenario, "class_order": self.data.class_order.tolist(), "steps": self.step_count}
        for key, acc in (("class_il", self.acc_class_il), ("task_il", self.acc_task_il)):
            out[key] = {
                "accuracy_matrix": acc.tolist(),
                "final_accuracy": final_average_accuracy(acc),
                "forgetting": average_forgetting(acc),
                "backward_transfer": backward_transfer(acc),
            }
        headline = "class_il" if self.data.scenario == "class-incremental" else "task_il"
        out["final_accuracy"] = out[headline]["final_accuracy"]
        return out


def train_online(data: SplitDataset, config: OnlineCLConfig | None = None, **kwargs) -> dict:
    """Build an :class:`OnlineCLTrainer` and run it; returns its summary."""
    return OnlineCLTrainer(data, config, **kwargs).run()
