"""What PPO and DQN share outside their training loops: counters, the continual
interface (``set_env``, ``task_id``, ``networks()``), evaluation, progress bar,
TensorBoard writer, and exact checkpoints (``save`` / ``load``)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from normrl.agents.common.build import (align_optimizer_state, global_rng_state, make_generator, make_monitor,
                                        set_global_rng_state, task_id_setters)
from normrl.agents.common.divergence import DivergenceGuard, first_nonfinite
from normrl.agents.common.episode_log import EpisodeLog
from normrl.utils.checkpoint_io import load_plain, save_plain
from normrl.utils.errors import CheckpointError, EvaluationInterrupted, TrainingDiverged

#: 2: written by save_plain (tensors and plain data only; loads with weights_only=True).
#: 1 (normrl 0.1.0) had the same content and loads through the same safe loader.
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def _fused_adam_supported(model: nn.Module) -> bool:
    """torch's fused Adam takes floating-point parameters on CUDA, and on CPU from
    torch 2.4 (the project allows older torch)."""
    params = list(model.parameters())
    devices = ("cpu", "cuda") if torch.torch_version.TorchVersion(torch.__version__) >= (2, 4) else ("cuda",)
    return bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)


class AgentBase:
    """Base of :class:`~normrl.agents.PPO` and :class:`~normrl.agents.DQN` (not used alone).

    Subclasses set ``ALGO``, build their networks/optimizer in ``__init__`` (calling
    :meth:`_init_common` and :meth:`_init_training`) and implement ``networks()``,
    ``_act(obs, deterministic)``, ``_default_schedule(horizon_steps)``,
    ``_config_class()``, ``_algo_state()`` and ``_load_algo_state(state)``.
    """

    ALGO = ""

    def _init_common(self, env, config, writer, logdir) -> None:
        self.env = env
        self.device = torch.device(env.device)
        self.config = config
        self.num_steps = 0
        self.num_updates = 0
        self.task_id = 0
        self.episode_log = EpisodeLog()
        self.logdir = None if logdir is None else Path(logdir)
        if writer is None and logdir is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(logdir))
        self.writer = writer
        self._obs = None  # the observation the next action is taken in

    def _init_training(self, model: nn.Module, optimizer_class, optimizer_kwargs, lr_schedule, schedule_now: bool) -> None:
        """Optimizer (NaP-wrapped when the norm asks), LR schedule, sampling generator,
        plasticity monitor and AdaB²N task-id setters for the trained ``model``.
        ``schedule_now``: build the default schedule here rather than at the first
        ``learn`` (whose length is then the horizon)."""
        c = self.config
        if optimizer_kwargs is None:
            optimizer_kwargs = {"lr": c.learning_rate}
            if optimizer_class is torch.optim.Adam:
                optimizer_kwargs["eps"] = c.adam_eps
                if getattr(c, "fused_adam", False) and _fused_adam_supported(model):
                    optimizer_kwargs["fused"] = True
        from normrl.normalization.projected_optimizer import build_optimizer

        # Value/Q heads stay free under NaP: a projected head would bound their range.
        self.optimizer = build_optimizer(model, c.norm, optimizer_class, optimizer_kwargs, c.nap_every, nap_output="free")
        self._trained = model
        self.interventions = None
        if c.interventions:
            from normrl.plasticity import build_interventions

            self.interventions = build_interventions(c.interventions, seed=c.seed)
            self.interventions.attach(model, self.optimizer)
        self._structure_version = 0
        self._intervention_events: dict[str, float] = {}
        self.lr_schedule = lr_schedule
        if lr_schedule is None and schedule_now:
            self.lr_schedule = self._default_schedule(c.schedule_horizon)
        self.generator = make_generator(self.device, c.seed)
        self.monitor = make_monitor(model, c.monitor_every, self.writer)
        self._task_setters = task_id_setters(model)
        self._probe_set = False
        self.divergence = DivergenceGuard(c.on_divergence, self.device)

    def _default_schedule(self, horizon_steps: int):
        """The LR schedule of ``config.lr_schedule`` over ``horizon_steps`` env steps."""
        raise NotImplementedError

    @staticmethod
    def _check_learn_steps(total_steps) -> None:
        if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        """One update of the trained network from ``loss``: the interventions' penalty
        added to the loss, the LR schedule's current rate, backward, global
        gradient-norm clip (``config.max_grad_norm``; 0 disables), the optimizer step
        (with the NaP projection when wrapped), the schedule's clock, then the
        interventions' ``after_step`` (resets, shrink & perturb, NaP re-projection last:
        :class:`~normrl.plasticity.Compose`)."""
        c = self.config
        if self.interventions is not None:
            loss = loss + self.interventions.penalty()
        if c.hessian_every and (self.num_updates + 1) % c.hessian_every == 0:
            self._log_hessian(loss)
        self.lr_schedule.apply(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = None
        if c.max_grad_norm > 0:
            grad_norm = nn.utils.clip_grad_norm_(self._trained.parameters(), c.max_grad_norm)
        if self.divergence.before_step(loss, grad_norm, self._trained, self.optimizer, self.num_updates + 1, self.num_steps):
            self.optimizer.step()
        self.lr_schedule.step()
        self.num_updates += 1
        if self.interventions is not None:
            self.interventions.after_step(self.num_updates)
            self._after_intervention()
        if c.heavy_tail_every and self.num_updates % c.heavy_tail_every == 0 and self.writer is not None:
            self._log_heavy_tail(self._trained)

    def _log_heavy_tail(self, model: nn.Module) -> None:
        """``plasticity/heavy_tail_alpha/<layer>`` of ``model``'s weights (FARMS)."""
        from normrl.metrics.heavy_tail import layer_heavy_tail_alphas

        for layer, alpha in layer_heavy_tail_alphas(model).items():
            self.writer.add_scalar(f"plasticity/heavy_tail_alpha/{layer}", alpha, self.num_steps)

    def _log_hessian(self, loss: torch.Tensor) -> None:
        """``plasticity/hessian_top_eigenvalue`` of ``loss`` (the update's minibatch) by
        power iteration; the graph is kept for the update's own backward."""
        if self.writer is None:
            return
        from normrl.metrics.hessian import hessian_top_eigenvalue

        params = [p for p in self._trained.parameters() if p.requires_grad]
        value = hessian_top_eigenvalue(lambda: loss, params, generator=torch.Generator().manual_seed(self.num_updates))
        self.writer.add_scalar("plasticity/hessian_top_eigenvalue", float(value), self.num_steps)

    # -- plasticity interventions --------------------------------------------------------
    def on_task_start(self, task_id: int) -> None:
        """Task hook (called by :class:`~normrl.continual.TaskScheduler`): the
        interventions' ``on_task_start`` (e.g. plasticity injection)."""
        if self.interventions is not None:
            self.interventions.on_task_start(task_id)
            self._after_intervention()

    def on_task_end(self, task_id: int) -> None:
        """Task hook: the interventions' ``on_task_end`` (e.g. LiNeS, resets at task end)."""
        if self.interventions is not None:
            self.interventions.on_task_end(task_id)
            self._after_intervention()

    def _after_intervention(self) -> None:
        """Collect what the last intervention call changed (summed until the next log),
        and follow a change of the parameter set (see :meth:`_on_structure_change`)."""
        for key, value in self.interventions.last_event.items():
            self._intervention_events[key] = self._intervention_events.get(key, 0) + value
        version = sum(getattr(iv, "structure_version", 0) for iv in self.interventions)
        if version != self._structure_version:
            self._structure_version = version
            self._on_structure_change()

    def _on_structure_change(self) -> None:
        """A structural intervention changed the trained network's parameter set (it
        rebound the optimizer and the NaP projector itself); subclasses update the
        networks that mirror it (DQN's target network)."""

    def _log_interventions(self) -> None:
        """Write the events since the last log (``plasticity/<intervention>/<what>/<layer>``)
        and the last penalty values (``plasticity/penalty/<intervention>``)."""
        if self.interventions is None or self.writer is None:
            return
        for key, value in self._intervention_events.items():
            self.writer.add_scalar(f"plasticity/{key}", value, self.num_steps)
        self._intervention_events = {}
        for label, value in self.interventions.last_penalties.items():
            self.writer.add_scalar(f"plasticity/penalty/{label}", float(value), self.num_steps)

    def _check_divergence(self) -> None:
        """Raise :class:`~normrl.utils.errors.TrainingDiverged` if a non-finite loss,
        gradient norm, parameter or statistic appeared since the last check (one host
        read; called at the agents' logging points)."""
        self.divergence.check(self, self.writer)

    def _load_training_state(self, state: dict[str, Any]) -> None:
        """Restore the optimizer (moments laid out like their parameters), the LR
        schedule (rebuilt from its saved settings when none was built yet) and the
        sampling generator from a checkpoint's algorithm state."""
        self.optimizer.load_state_dict(state["optimizer"])
        align_optimizer_state(self.optimizer)
        if state["lr_schedule"] is not None:
            if self.lr_schedule is None:
                from normrl.normalization import make_lr_schedule

                s = state["lr_schedule"]
                self.lr_schedule = make_lr_schedule(s["name"], s["base_lr"], s["total_steps"], s["warmup_steps"],
                                                    s["final_lr_fraction"], s["restart_on_task_switch"])
            self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.generator.set_state(state["generator"])

    def _training_state(self) -> dict[str, Any]:
        """The optimizer, LR schedule and generator states (see :meth:`_load_training_state`)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": None if self.lr_schedule is None else self.lr_schedule.state_dict(),
            "generator": self.generator.get_state(),
        }

    # -- continual interface -------------------------------------------------------------
    def networks(self) -> list[nn.Module]:
        """Every network of the agent (for task hooks, metrics, checkpoints)."""
        raise NotImplementedError

    def set_env(self, env) -> None:
        """Train on ``env`` from now on (same single spaces and ``num_envs``); the
        rollout state restarts with ``env.reset()`` at the next ``learn``."""
        old = self.env
        if env.single_observation_space.shape != old.single_observation_space.shape or env.single_action_space != old.single_action_space:
            raise ValueError(
                f"set_env needs the same spaces: observation {old.single_observation_space.shape} vs "
                f"{env.single_observation_space.shape}, action {old.single_action_space} vs {env.single_action_space}"
            )
        if env.num_envs != old.num_envs:
            raise ValueError(f"set_env needs the same num_envs ({old.num_envs}), got {env.num_envs}")
        self.env = env
        self._obs = None

    def _current_obs(self) -> torch.Tensor:
        if self._obs is None:
            self._obs = self.env.reset()
        return self._obs

    # -- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, env, episodes: int = 10, deterministic: bool = True, seed: int | None = None, max_steps: int = 1_000_000,
                 should_stop: Callable[[], bool] | None = None, epsilon: float = 0.0, epsilon_seed: int | None = None) -> float:
        """Mean undiscounted return of ``episodes`` episodes on ``env`` (its own
        instance, not the training env), with the greedy / most likely action by
        default. Episodes are spread evenly over the sub-envs (each sub-env
        contributes its first episodes), so short episodes are not over-counted; give
        ``env`` ``episodes`` sub-envs to run every episode at once.
        ``epsilon``: probability of a uniformly random action instead (ε-greedy
        evaluation, the Atari convention), drawn from a generator made for this
        evaluation and seeded with ``epsilon_seed`` (default ``seed``, else 0), so
        evaluating never moves the training RNG. ``max_steps`` bounds the batched
        steps (ValueError if reached). ``should_stop`` is polled every 16 batched
        steps (where the evaluation also checks whether it is done); when it returns
        True the evaluation raises :class:`~normrl.utils.errors.EvaluationInterrupted`.

        CartPole and MinAtar envs (not Seaquest while it resizes its lists) are
        stepped 16 steps per call of one function of tensors
        (:mod:`normrl.agents.common.functional_env`; bit for bit the same episodes
        on CPU), compiled when the agent's config has ``compile=True`` and
        ``deterministic`` is true."""
        from normrl.agents.common.evaluation import run_evaluation

        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        with self._eval_mode():
            return run_evaluation(self, env, episodes, deterministic, seed, max_steps, should_stop, epsilon, epsilon_seed)

    def predict(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions for a batch of observations, with the networks in eval mode (restored
        afterwards) and no gradients: batch-dependent norms use their running
        statistics, so each observation's action does not depend on the others."""
        with self._eval_mode(), torch.no_grad():
            return self._act(obs, deterministic)

    @contextlib.contextmanager
    def _eval_mode(self):
        """Every network in eval mode for the block; the previous modes afterwards."""
        modes = [(m, m.training) for m in self.networks()]
        for m, _ in modes:
            m.train(False)
        try:
            yield
        finally:
            for m, mode in modes:
                m.train(mode)

    # -- logging -------------------------------------------------------------------------
    def _progress_bar(self, total: int, enabled: bool):
        if not enabled:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="step", unit_scale=True, desc=f"{self.ALGO} {getattr(self.env, 'spec_id', '')}".strip(), dynamic_ncols=True)

    def _log_progress(self, bar, done_steps: int) -> None:
        if bar is None:
            return
        bar.n = done_steps
        ret = self.episode_log.recent_mean_return
        bar.set_postfix(sps=f"{self.episode_log.last_sps:,.0f}", ret=f"{ret:.1f}", refresh=False)
        bar.refresh()

    def summary(self) -> dict[str, Any]:
        """Counters and episode statistics (what ``summary.json`` holds)."""
        log = self.episode_log
        return {
            "algo": self.ALGO,
            "env": getattr(self.env, "spec_id", ""),
            "steps": self.num_steps,
            "updates": self.num_updates,
            "episodes": log.num_episodes,
            "mean_return_last_100": log.recent_mean_return if log.recent_returns else None,
            "skipped_updates": self.divergence.skipped_updates,
            "return_curve": [[s, r] for s, r in log.curve],
        }

    def close(self) -> None:
        """Flush and close the TensorBoard writer (if any)."""
        if self.writer is not None:
            self.writer.close()

    # -- checkpoints ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write everything needed to continue bit-for-bit: networks, optimizer (with
        the NaP projector's norms), LR schedule clock, replay buffer (DQN, in full),
        env state and current observation, every RNG (agent generator, torch global,
        env generator) and the counters. Atomic (temp file + rename); tensors and plain
        data only, so it loads with ``torch.load(weights_only=True)``
        (:mod:`normrl.utils.checkpoint_io`). A network holding a non-finite parameter or
        buffer is never written: :class:`~normrl.utils.errors.TrainingDiverged`."""
        path = Path(path)
        bad = first_nonfinite(self)
        if bad is not None:
            raise TrainingDiverged(f"{path}: not written: parameter {bad} is non-finite (an earlier checkpoint is kept)",
                                   {"env_step": self.num_steps, "update": self.num_updates, "cause": "parameters",
                                    "parameter": bad})
        state = {
            "version": CHECKPOINT_VERSION,
            "algo": self.ALGO,
            "config": dataclasses.asdict(self.config),
            "num_steps": self.num_steps,
            "num_updates": self.num_updates,
            "task_id": self.task_id,
            "obs": self._obs,
            # an env the agent never reset may have no state yet
            "env": None if self._obs is None else self.env.state_dict(),
            "env_id": getattr(self.env, "spec_id", ""),
            "episode_log": self.episode_log.state_dict(),
            "global_rng": global_rng_state(),
            "monitor": None if getattr(self, "monitor", None) is None else self.monitor.state_dict(),
            "skipped_updates": self.divergence.skipped_updates,
            "interventions": None if self.interventions is None else self.interventions.state_dict(),
            **self._algo_state(),
        }
        return save_plain(_own_storage(state), path)

    def load(self, path: str | os.PathLike, trusted: bool = False) -> "AgentBase":
        """Restore a checkpoint written by :meth:`save` into this agent, in place, and
        return it. Build the agent as for the saved run first (same algorithm, env id
        and ``num_envs``, config, injected network/optimizer/schedule); mismatches
        raise :class:`~normrl.utils.errors.CheckpointError`. Use
        :meth:`from_checkpoint` to rebuild a default agent from the saved config.

        The file is read with ``torch.load(weights_only=True)``: one whose pickle needs
        anything but tensors and plain data is refused (CheckpointError naming the file)
        before any of it runs. ``trusted=True`` unpickles such a file in full (with a
        warning): only for files from a source you trust."""
        state = _read_checkpoint(path, trusted)
        if state.get("algo") != self.ALGO:
            raise CheckpointError(f"{path}: checkpoint is for {state.get('algo')!r}, not {self.ALGO!r}")
        try:
            self._load_interventions(state.get("interventions"))
            self._load_algo_state(state)
            if state["env"] is not None:
                self.env.load_state_dict(state["env"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{path}: checkpoint does not match this agent: {exc}") from exc
        self.num_steps = int(state["num_steps"])
        self.num_updates = int(state["num_updates"])
        self.task_id = int(state["task_id"])
        self._obs = None if state["obs"] is None else state["obs"].to(self.device)
        if not getattr(self.env, "checkpointable", True):
            self._obs = None  # its episodes cannot be restored: the next learn() starts fresh ones
        self.episode_log.load_state_dict(state["episode_log"])
        if state.get("monitor") is not None and getattr(self, "monitor", None) is not None:
            mon = dict(state["monitor"])
            if mon.get("probe") is not None:
                mon["probe"] = mon["probe"].to(self.device)
            self.monitor.load_state_dict(mon)
            self._probe_set = self.monitor.probe is not None
        set_global_rng_state(state["global_rng"])
        self.divergence.reset()
        self.divergence.skipped_updates = int(state.get("skipped_updates", 0))
        return self

    def _load_interventions(self, saved) -> None:
        """Intervention state first: a structural one re-creates the modules it added,
        so the network state that follows loads onto the same structure."""
        if (saved is None) != (self.interventions is None):
            raise CheckpointError("the checkpoint's interventions do not match this agent's config.interventions "
                                  f"({'none saved' if saved is None else 'saved ones'} vs {self.config.interventions!r})")
        if saved is not None:
            self.interventions.load_state_dict(saved)
            self._after_intervention()
            self._intervention_events = {}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, env=None, device: str | torch.device | None = None, writer=None, logdir=None,
                        trusted: bool = False):
        """Rebuild an agent with default networks/optimizer from the config stored in
        ``path`` and load it. ``env`` defaults to ``make_env(saved env id,
        config.num_envs, device)``. ``trusted``: as in :meth:`load`."""
        state = _read_checkpoint(path, trusted)
        if state.get("algo") != cls.ALGO:
            raise CheckpointError(f"{path}: checkpoint is for {state.get('algo')!r}, not {cls.ALGO!r}")
        config = cls._config_class()(**_tuples(state["config"]))
        if env is None:
            from normrl.envs import make_env

            env = make_env(state["env_id"], config.num_envs, device or "cpu", seed=config.seed)
        return cls(env, config, writer=writer, logdir=logdir).load(path, trusted)

    @classmethod
    def _config_class(cls):
        raise NotImplementedError


def _own_storage(state):
    """``state`` with every tensor that views a larger storage copied out: torch.save
    writes a view's whole storage (a stacked seed's parameters are rows of all seeds')."""
    def own(t):
        if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes() > t.numel() * t.element_size():
            return t.clone()
        return t

    return torch.utils._pytree.tree_map(own, state)


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _read_checkpoint(path, trusted: bool = False) -> dict:
    state = load_plain(path, trusted=trusted)
    if not isinstance(state, dict) or state.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: not a normrl agent checkpoint (version {state.get('version') if isinstance(state, dict) else None})")
    return state
