"""The DQN agent: batched epsilon-greedy acting, a device-resident replay buffer with
n-step returns and task ids, Double DQN updates and a hard or Polyak target network.

The training loop (:meth:`DQN.learn`) reads top to bottom like CleanRL's ``dqn.py``;
buffers, builders, logging and checkpoints come from :mod:`normrl.agents.common`.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from normrl.agents.common.base import AgentBase
from normrl.agents.common.build import adab2n_aux_loss, discrete_actions, prefers_channels_last, seeded
from normrl.agents.common.compiled_training import check_compile_support
from normrl.agents.common.replay_buffer import ReplayBuffer
from normrl.agents.dqn.config import DQNConfig
from normrl.agents.dqn.loss import td_loss, td_targets, update_target
from normrl.agents.dqn.networks import build_q_network, lazy_epsilon_greedy, linear_epsilon


class DQN(AgentBase):
    """DQN (Mnih et al. 2015) with Double DQN targets (arXiv 1509.06461) over a batched
    :class:`~normrl.envs.TensorEnv`.

    Args:
        env: the training env (``Discrete`` actions); everything stays on ``env.device``.
        config: :class:`DQNConfig` [``DQNConfig()``]; ``config.num_envs`` is set to
            ``env.num_envs``.
        network: an ``nn.Module`` mapping observations to ``(B, n_actions)`` Q-values;
            default :func:`~normrl.agents.dqn.networks.build_q_network` with
            ``config.norm``, ``hidden``, ``activation``. The target network is a deep copy.
        optimizer_class: optimizer constructor [``torch.optim.Adam``]; with a NaP norm
            it is wrapped in ``ProjectedOptimizer(opt, NaPProjector(q_network, output="free"))``.
        optimizer_kwargs: extra keyword arguments [``{"lr": learning_rate, "eps":
            adam_eps, "fused": fused_adam}`` for Adam, ``{"lr": learning_rate}`` otherwise].
        lr_schedule: object with ``apply(optimizer)``, ``step()``, ``state_dict()``,
            ``load_state_dict()``; default built from ``config.lr_schedule``.
        writer: a TensorBoard ``SummaryWriter`` [None; made from ``logdir`` if given].
        logdir: directory for a new ``SummaryWriter`` [None].

    Attributes used by continual-learning code: ``replay_buffer`` (with ``clear()``),
    ``task_id`` (stored with every transition), ``num_steps``, ``optimizer``,
    ``lr_schedule``, ``writer``.

    Counting (env steps = transitions over all sub-envs): updates start once
    ``num_steps >= learning_starts``; every time ``num_steps`` passes a multiple of
    ``train_freq``, ``gradient_steps`` updates run; every time it passes a multiple of
    ``target_update_interval`` (after learning starts) the target network is updated.
    (SB3 counts ``train_freq`` in batched env calls instead.)
    """

    ALGO = "dqn"

    def __init__(
        self,
        env,
        config: DQNConfig | None = None,
        network: Optional[nn.Module] = None,
        optimizer_class: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: Optional[dict] = None,
        lr_schedule: Any = None,
        writer=None,
        logdir=None,
    ):
        config = dataclasses.replace(config or DQNConfig(), num_envs=env.num_envs).validate()
        self._init_common(env, config, writer, logdir)
        self.n_actions = discrete_actions(env)
        with seeded(config.seed, self.device):
            if network is None:
                network = build_q_network(env.single_observation_space, self.n_actions, config.norm, config.hidden, config.activation)
            self.q_network = network.to(self.device)
        self._build_target_network()
        self._init_training(self.q_network, optimizer_class, optimizer_kwargs, lr_schedule,
                            schedule_now=config.schedule_horizon > 0 or config.lr_schedule == "constant")
        obs_shape = env.single_observation_space.shape
        self._compiled = None
        if config.compile:  # fail before any training (again at every learn: interventions may come later)
            check_compile_support(self, self.q_network)
        self.replay_buffer = ReplayBuffer(config.buffer_size, env.num_envs, obs_shape, self._storage_dtype(), self.device,
                                          channels_last=len(obs_shape) == 3 and prefers_channels_last(self.q_network))

    @classmethod
    def _config_class(cls):
        return DQNConfig

    def _storage_dtype(self) -> torch.dtype:
        choice = self.config.obs_storage
        if choice == "auto":
            dtype = self.env.single_observation_space.dtype
            return torch.uint8 if dtype in (np.uint8, np.bool_) else torch.float32
        return torch.uint8 if choice == "uint8" else torch.float32

    def _default_schedule(self, horizon_steps: int):
        from normrl.normalization import make_lr_schedule

        c = self.config
        if c.lr_schedule == "constant":
            return make_lr_schedule("constant", c.learning_rate, 1, warmup_steps=c.lr_warmup_updates)
        updates = max(1, (horizon_steps - c.learning_starts) // c.train_freq * c.gradient_steps)
        return make_lr_schedule(c.lr_schedule, c.learning_rate, updates, warmup_steps=min(c.lr_warmup_updates, updates - 1))

    def networks(self) -> list[nn.Module]:
        """``[q_network, target_network]``."""
        return [self.q_network, self.target_network]

    @property
    def epsilon(self) -> float:
        """Exploration epsilon at the current ``num_steps``."""
        c = self.config
        return linear_epsilon(self.num_steps, c.start_eps, c.end_eps, c.exploration_steps)

    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        eps = 0.0 if deterministic else self.epsilon
        return lazy_epsilon_greedy(self.q_network, obs, self.n_actions, eps, self.generator)

    # -- training --------------------------------------------------------------------------
    def learn(self, total_steps: int, progress: bool = True) -> "DQN":
        """Train for ``total_steps`` more env steps, rounded up to whole batched steps
        of ``num_envs``; counters, epsilon, schedule, buffer and RNG continue."""
        self._check_learn_steps(total_steps)
        c = self.config
        if c.compile:
            check_compile_support(self, self.q_network)
        if self.lr_schedule is None:
            self.lr_schedule = self._default_schedule(self.num_steps + total_steps)
        env, q_net, rb, gen = self.env, self.q_network, self.replay_buffer, self.generator
        n, n_actions = env.num_envs, self.n_actions
        iterations = math.ceil(total_steps / n)
        bar = self._progress_bar(iterations * n, progress)
        self.episode_log.restart_clock(self.num_steps)
        obs = self._current_obs()
        start = self.num_steps
        stats: dict[str, torch.Tensor] = {}
        stat_count = 0
        try:
            for _ in range(iterations):
                # ---- act epsilon-greedily in every sub-env and store the transitions -----
                q_net.train(False)
                with torch.no_grad():
                    actions = lazy_epsilon_greedy(q_net, obs, n_actions, self.epsilon, gen)
                next_obs, rewards, terminated, truncated, info = env.step(actions)
                real_next = info.get("final_obs", next_obs)
                rb.add(obs, actions, rewards, real_next, terminated, truncated, self.task_id)
                self.episode_log.record(info)
                obs = next_obs
                before, self.num_steps = self.num_steps, self.num_steps + n
                # ---- learn: gradient_steps updates per train_freq env steps -------------
                if self.num_steps >= c.learning_starts and rb.num_startable(c.n_step) > 0:
                    rounds = self.num_steps // c.train_freq - before // c.train_freq
                    if rounds:
                        q_net.train(True)
                        for _ in range(rounds * c.gradient_steps):
                            for k, v in self._update().items():
                                stats[k] = stats[k] + v if k in stats else v
                            stat_count += 1
                    if self.num_steps // c.target_update_interval > before // c.target_update_interval:
                        update_target(self.target_network, q_net, c.tau)
                # ---- log every log_interval env steps (one host sync) -------------------
                if self.num_steps // c.log_interval > before // c.log_interval:
                    self._check_divergence()  # non-finite loss/gradient/parameters since the last log
                    self._log(stats, stat_count)
                    stats, stat_count = {}, 0
                    self._log_progress(bar, self.num_steps - start)
        finally:
            self._obs = obs
            if bar is not None:
                self._log_progress(bar, self.num_steps - start)
                bar.close()
        self._check_divergence()
        self.episode_log.flush(self.num_steps, None)
        return self

    def _update(self) -> dict[str, torch.Tensor]:
        c = self.config
        batch = self.replay_buffer.sample(c.batch_size, c.n_step, c.gamma, self.generator)
        if c.compile:
            stats = self._compiled_update(batch)
            self._monitor_update(batch.obs)
            return stats
        with torch.no_grad():
            q_next_target = self.target_network(batch.next_obs)
            q_next_online = None
            if c.double_dqn:
                for setter in self._task_setters:  # a training-mode forward too
                    setter(batch.task_ids)
                q_next_online = self.q_network(batch.next_obs)
            targets = td_targets(q_next_online, q_next_target, batch.rewards, batch.discounts)
        for setter in self._task_setters:
            setter(batch.task_ids)
        q = self.q_network(batch.obs).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        loss = td_loss(q, targets, c.loss)
        if c.aux_loss_coef > 0:
            loss = loss + c.aux_loss_coef * adab2n_aux_loss(self.q_network)
        self._optimizer_step(loss)
        self._monitor_update(batch.obs)
        return {"td_loss": loss.detach(), "q_values": q.detach().mean()}

    def _monitor_update(self, obs: torch.Tensor) -> None:
        """Plasticity monitor after an update; its probe is the first update's batch."""
        if self.monitor is None:
            return
        if not self._probe_set:
            self.monitor.set_probe(obs.clone())
            self._probe_set = True
        self.monitor.after_update(self.num_steps)

    def _compiled_update(self, batch) -> dict[str, torch.Tensor]:
        """One compiled update (built at first use; the support check runs once per
        ``learn``, see :meth:`learn`)."""
        if self._compiled is None:
            from normrl.agents.dqn.compiled_update import CompiledDQNUpdate

            self._compiled = CompiledDQNUpdate(self)
        return self._compiled(batch)

    def _log(self, stats: dict[str, torch.Tensor], count: int) -> None:
        self.episode_log.flush(self.num_steps, self.writer)
        self._log_interventions()
        if self.writer is None:
            return
        for name, value in stats.items():
            self.writer.add_scalar(f"losses/{name}", float(value) / count, self.num_steps)
        self.writer.add_scalar("charts/epsilon", self.epsilon, self.num_steps)
        self.writer.add_scalar("charts/learning_rate", self.optimizer.param_groups[0]["lr"], self.num_steps)

    def _on_structure_change(self) -> None:
        """The target network mirrors the online one's new structure (plasticity
        injection): rebuilt as a copy of it, which equals a target update."""
        self._build_target_network()

    def _build_target_network(self) -> None:
        """``target_network``: a frozen copy of the online network, in eval mode."""
        self.target_network = copy.deepcopy(self.q_network)
        self.target_network.train(False)
        for p in self.target_network.parameters():
            p.requires_grad_(False)

    def set_env(self, env) -> None:
        """Train on ``env`` from now on (same spaces and ``num_envs``); n-step returns
        never span the switch (the buffer's newest row is marked as an episode end)."""
        super().set_env(env)
        self.replay_buffer.mark_episode_boundary()

    # -- checkpoints -----------------------------------------------------------------------
    def _algo_state(self) -> dict[str, Any]:
        return {
            "q_network": self.q_network.state_dict(),
            "target_network": self.target_network.state_dict(),
            **self._training_state(),
            "replay_buffer": self.replay_buffer.state_dict() if self.config.save_replay else None,
        }

    def _load_algo_state(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])
        self._load_training_state(state)
        if state["replay_buffer"] is not None:
            self.replay_buffer.load_state_dict({k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in state["replay_buffer"].items()})
        else:
            self.replay_buffer.clear()
