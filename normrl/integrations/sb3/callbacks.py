"""SB3 callbacks: plasticity metrics after every optimizer step, plasticity
interventions, and the task-stream bookkeeping used by
:func:`normrl.integrations.sb3.learn_stream`."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat

from normrl.metrics.monitor import PlasticityMonitor

__all__ = ["PlasticityCallback", "TaskScheduleCallback", "InterventionCallback"]


def _monitored_module(policy: nn.Module) -> nn.Module:
    """DQN: the online Q-network only (the target is a copy); otherwise the policy."""
    q_net = getattr(policy, "q_net", None)
    return q_net if isinstance(q_net, nn.Module) else policy


def _probe_forward(module: nn.Module, obs: torch.Tensor) -> None:
    """Run ``module`` deterministically on ``obs`` (no action sampling)."""
    if hasattr(module, "get_distribution") and hasattr(module, "predict_values"):
        module.get_distribution(obs)
        module.predict_values(obs)
    else:
        module(obs)


class _LoggerWriter:
    """``add_scalar`` onto an SB3 logger: written at once, at the given step, to the
    logger's TensorBoard output (so no event is lost between SB3's dumps), and recorded
    (TensorBoard excluded) for SB3's stdout/CSV tables at its next dump."""

    def __init__(self, logger):
        self.logger = logger

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.logger.record(tag, value, exclude="tensorboard")
        for fmt in getattr(self.logger, "output_formats", []):
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        for fmt in getattr(self.logger, "output_formats", []):
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.flush()


def _buffer_observations(model, size: int) -> Optional[np.ndarray]:
    """The first ``size`` stored observations of the model's rollout/replay buffer."""
    buf = getattr(model, "rollout_buffer", None)
    if buf is not None and getattr(buf, "observations", None) is not None and (buf.full or buf.pos > 0):
        n = buf.buffer_size if buf.full else buf.pos
        obs = buf.observations[:n]
    else:
        buf = getattr(model, "replay_buffer", None)
        if buf is None or not isinstance(getattr(buf, "observations", None), np.ndarray) or not (buf.full or buf.pos > 0):
            return None
        n = buf.buffer_size if buf.full else buf.pos
        obs = buf.observations[:n]
    # (steps, envs, *shape), or (steps*envs, *shape) once PPO's buffer was flattened
    return obs.reshape(-1, *model.observation_space.shape)[:size]


class PlasticityCallback(BaseCallback):
    """Logs the ``plasticity/*`` metrics (``docs/metrics.md``) of an SB3 model's policy.

    A :class:`~normrl.metrics.PlasticityMonitor` watches the policy (DQN: its online
    ``q_net``) and is called after every optimizer step through a step post-hook on
    ``model.policy.optimizer``, so ``every`` counts gradient steps exactly as in
    normrl's own agents and the gradient norms are those of the step just taken. The
    probe is the first ``probe_size`` observations of the rollout/replay buffer at the
    first logging event; actor-critic policies also log ``plasticity/policy_entropy``
    (mean entropy of the action distribution on the probe). Values go to the run's
    TensorBoard log (``tensorboard_log=``) at ``model.num_timesteps``, and into SB3's
    logger tables.

    Args:
        every: log every ``every``-th optimizer step [1000].
        tau: ReDo dormancy threshold [0.025].
        probe_size: probe rows [256].
        layers: module names (relative to the monitored module) overriding the default
            hidden-activation rule [None].

    The monitor persists across ``learn`` calls of the same model (the initial-weights
    snapshot is taken when the callback first sees the model); ``self.monitor`` holds it
    and ``self.last_logged`` the last logged ``{tag: value}``.
    """

    def __init__(self, every: int = 1000, tau: float = 0.025, probe_size: int = 256, layers: Optional[Sequence[str]] = None,
                 verbose: int = 0):
        super().__init__(verbose)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.every = every
        self.tau = tau
        self.probe_size = probe_size
        self.layers = layers
        self.monitor: Optional[PlasticityMonitor] = None
        self.last_logged: Optional[dict[str, float]] = None
        self._policy = None
        self._hook = None

    def _init_callback(self) -> None:
        policy = self.model.policy
        if self.monitor is None or self._policy is not policy:
            self.monitor = PlasticityMonitor(_monitored_module(policy), every=self.every, tau=self.tau,
                                             probe_size=self.probe_size, layers=self.layers, forward=_probe_forward)
            self._policy = policy
        self.monitor.writer = _LoggerWriter(self.logger)

    def _on_training_start(self) -> None:
        if self._hook is None:
            self._hook = self.model.policy.optimizer.register_step_post_hook(self._after_step)

    def _on_training_end(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.monitor.writer.flush()

    def _on_step(self) -> bool:
        return True

    def _after_step(self, _optimizer, _args, _kwargs) -> None:
        mon = self.monitor
        entropy = None
        if mon.next_update_logs:
            if mon.probe is None:
                obs = _buffer_observations(self.model, mon.probe_size)
                if obs is not None:
                    mon.set_probe(torch.as_tensor(obs, device=self.model.device))
            if mon.probe is not None and hasattr(self.model.policy, "get_distribution"):
                entropy = self._probe_entropy(mon.probe)
        logged = mon.after_update(self.model.num_timesteps, policy_entropy=entropy)
        if logged is not None:
            self.last_logged = logged

    @torch.no_grad()
    def _probe_entropy(self, probe: torch.Tensor) -> torch.Tensor:
        policy = self.model.policy
        modes = [(m, m.training) for m in policy.modules()]
        policy.set_training_mode(False)
        try:
            return policy.get_distribution(probe).entropy().mean()
        finally:
            for m, mode in modes:
                m.training = mode


class TaskScheduleCallback(BaseCallback):
    """SB3 callback used by :func:`learn_stream` inside every ``learn`` call.

    Records the current task (``continual/task_id``) in SB3's logger at every rollout
    end, and stops ``learn`` early when the scheduler was asked to stop
    (``scheduler.request_stop()``).

    Args:
        scheduler: the running :class:`normrl.continual.TaskScheduler`.
    """

    def __init__(self, scheduler, verbose: int = 0):
        super().__init__(verbose)
        self.scheduler = scheduler

    def _on_step(self) -> bool:
        return not getattr(self.scheduler, "_stop", False)

    def _on_rollout_end(self) -> None:
        task = self.scheduler.current_task_id
        if task is not None:
            self.logger.record("continual/task_id", task)


class InterventionCallback(BaseCallback):
    """Plasticity interventions (:mod:`normrl.plasticity`) inside an SB3 model's training.

    Example::

        model.learn(100_000, callback=InterventionCallback(["redo:tau=0.1,every=1000", "l2_init:lam=1e-4"]))

    The interventions attach to the policy (DQN: its online ``q_net``) and the policy's
    optimizer when the callback first sees the model, and persist across ``learn`` calls.
    Through optimizer step hooks on ``model.policy.optimizer``:

    * before every step, the penalty's gradient (L2, L2-init, Parseval) is added to the
      parameters' gradients. SB3 clips gradients before its step, so — unlike normrl's own
      agents, which add the penalty to the loss — the penalty's gradient is not clipped;
    * after every step, ``after_step(n)`` (``n`` counts optimizer steps), then the NaP
      re-projection when the optimizer is a NaP optimizer (``norm_policy_kwargs("nap")``).

    ``on_task_start`` / ``on_task_end`` forward to the interventions: with
    :func:`~normrl.integrations.sb3.learn_stream` the scheduler calls them at task
    boundaries. What an intervention changed is recorded in SB3's logger and the run's
    TensorBoard log as ``plasticity/<intervention>/<what>/<layer>`` at the step it
    happened. Structural interventions (``plasticity_injection``) are refused for DQN:
    SB3 copies the online network into its target parameter by parameter, which a new
    head would break.

    Unit-level methods (ReDo, continual backprop) need a batch to score or trace on:
    SB3 never calls the policy as a whole, so after every rollout they get the first
    ``probe_size`` observations of the rollout/replay buffer, run through the policy's
    deterministic parts (no action sampling, so SB3's random stream is untouched).

    Args:
        interventions: spec strings (``"redo:every=1000"``), Intervention objects, or a
            built :class:`~normrl.plasticity.Compose`.
        seed: seeds the stochastic interventions [0].
        probe_size: buffer rows given to ReDo/CBP as their batch [256].
    """

    def __init__(self, interventions, seed: int = 0, probe_size: int = 256, verbose: int = 0):
        super().__init__(verbose)
        self.probe_size = probe_size
        from normrl.plasticity import Compose, build_interventions

        self.interventions = interventions if isinstance(interventions, Compose) else build_interventions(interventions, seed=seed)
        self.steps = 0
        self._policy = None
        self._hooks: list = []
        self._writer = None
        self._pending: list[tuple[str, int]] = []  # task hooks that came before the first learn()

    def _init_callback(self) -> None:
        policy = self.model.policy
        if self._policy is policy:
            return
        if self._policy is not None:
            raise ValueError("an InterventionCallback is bound to one model; make a new one for another model")
        module = _monitored_module(policy)
        if module is not policy and any(getattr(iv, "structural", False) for iv in self.interventions):
            raise ValueError("structural interventions (plasticity_injection) are not supported with SB3's DQN: "
                             "its target network is synced parameter by parameter")
        for iv in self.interventions:
            if hasattr(iv, "forward") and iv.forward is None:
                iv.forward = _probe_forward  # SB3 policies are not called as a whole; no action sampling
        self.interventions.attach(module, policy.optimizer)
        self._policy = policy
        self._writer = _LoggerWriter(self.logger)
        for hook, task_id in self._pending:
            getattr(self, hook)(task_id)
        self._pending = []

    def _on_training_start(self) -> None:
        self._writer = _LoggerWriter(self.logger)
        if not self._hooks:
            opt = self.model.policy.optimizer
            self._hooks = [opt.register_step_pre_hook(self._before_step), opt.register_step_post_hook(self._after_step)]

    def _on_training_end(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self._writer is not None:
            self._writer.flush()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        # Unit-level methods (ReDo, CBP) score and trace on a batch: SB3 never calls the
        # policy as a whole during training, so they get the buffer's first rows.
        probes = [iv for iv in self.interventions if callable(getattr(iv, "set_probe", None))]
        if probes:
            obs = _buffer_observations(self.model, self.probe_size)
            if obs is not None:
                x = torch.as_tensor(obs, device=self.model.device)
                for iv in probes:
                    iv.set_probe(x)

    def _before_step(self, _optimizer, _args, _kwargs) -> None:
        penalty = self.interventions.penalty()
        if penalty.requires_grad:
            penalty.backward()

    def _after_step(self, _optimizer, _args, _kwargs) -> None:
        self.steps += 1
        self.interventions.after_step(self.steps)
        self._record()

    def _record(self) -> None:
        for key, value in self.interventions.last_event.items():
            self._writer.add_scalar(f"plasticity/{key}", value, self.model.num_timesteps)

    def on_task_start(self, task_id: int) -> None:
        """Forward a task start to the interventions (held until the callback is bound
        to its model when it comes before the first ``learn``)."""
        if self._policy is None:
            self._pending.append(("on_task_start", task_id))
            return
        self.interventions.on_task_start(task_id)
        self._record()

    def on_task_end(self, task_id: int) -> None:
        """Forward a task end to the interventions."""
        if self._policy is None:
            self._pending.append(("on_task_end", task_id))
            return
        self.interventions.on_task_end(task_id)
        self._record()
