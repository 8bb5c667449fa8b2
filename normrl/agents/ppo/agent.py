"""The PPO agent: batched on-device rollouts, GAE, clipped-objective minibatch epochs.

The training loop (:meth:`PPO.learn`) reads top to bottom like CleanRL's ``ppo.py``;
the pieces it shares with DQN (buffers, builders, episode logging, checkpoints) are
imported from :mod:`normrl.agents.common`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from normrl.agents.common.base import AgentBase
from normrl.agents.common.build import adab2n_aux_loss, discrete_actions, seeded
from normrl.agents.common.compiled_training import check_compile_support
from normrl.agents.common.gae import compute_gae
from normrl.agents.common.rollout_buffer import RolloutBuffer
from normrl.agents.ppo.config import PPOConfig
from normrl.agents.ppo.loss import ppo_loss
from normrl.agents.ppo.compiled_update import CompiledPPOUpdate
from normrl.agents.ppo.networks import ActorCritic, sample_actions
from normrl.agents.ppo.rollout import ChunkedRollout


class PPO(AgentBase):
    """Proximal Policy Optimization (Schulman et al. 2017, arXiv 1707.06347) over a
    batched :class:`~normrl.envs.TensorEnv`, with CleanRL's implementation details.

    Args:
        env: the training env (``Discrete`` actions); its ``num_envs`` sub-envs step
            together and everything stays on ``env.device``.
        config: :class:`PPOConfig` [``PPOConfig()``]; ``config.num_envs`` is set to
            ``env.num_envs``.
        network: an ``nn.Module`` with ``forward(obs) -> (logits, value)`` and
            ``value(obs)``; default :class:`~normrl.agents.ppo.networks.ActorCritic`
            built with ``config.norm``, ``hidden``, ``activation``.
        optimizer_class: optimizer constructor [``torch.optim.Adam``]; with a NaP norm
            it is wrapped in ``ProjectedOptimizer(opt, NaPProjector(network, output="free"))``.
        optimizer_kwargs: extra keyword arguments [``{"lr": learning_rate, "eps":
            adam_eps, "fused": fused_adam}`` for Adam, ``{"lr": learning_rate}`` otherwise].
        lr_schedule: an object with ``apply(optimizer)``, ``step()`` and
            ``state_dict()``/``load_state_dict()`` (e.g. ``make_lr_schedule(...)``),
            applied before and advanced after every optimizer update; default built
            from ``config.lr_schedule`` over ``config.schedule_horizon`` env steps.
        writer: a TensorBoard ``SummaryWriter`` [None; made from ``logdir`` if given].
        logdir: directory for a new ``SummaryWriter`` [None].

    Truncated episodes are bootstrapped: the reward of a truncated step gets
    ``gamma * V(final_obs)`` added, computed once per rollout for the truncated
    transitions only.
    """

    ALGO = "ppo"

    def __init__(
        self,
        env,
        config: PPOConfig | None = None,
        network: Optional[nn.Module] = None,
        optimizer_class: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: Optional[dict] = None,
        lr_schedule: Any = None,
        writer=None,
        logdir=None,
    ):
        config = dataclasses.replace(config or PPOConfig(), num_envs=env.num_envs).validate()
        if config.num_seeds != 1:
            raise ValueError(f"a PPO agent is one seed (num_seeds=1), got num_seeds={config.num_seeds}; train several seeds "
                             "with normrl.runs.train_seeds or StackedPPO (normrl.agents.ppo.stacked)")
        self._init_common(env, config, writer, logdir)
        self.n_actions = discrete_actions(env)
        with seeded(config.seed, self.device):
            if network is None:
                network = ActorCritic(env.single_observation_space, self.n_actions, config.norm, config.hidden, config.activation, config.shared_network)
            self.network = network.to(self.device)
        self._init_training(self.network, optimizer_class, optimizer_kwargs, lr_schedule,
                            schedule_now=config.schedule_horizon > 0)
        self.buffer = RolloutBuffer(config.num_steps, env.num_envs, env.single_observation_space.shape, self._obs_dtype(), self.device)
        if config.compile:  # fail before any training (again at every learn: interventions may come later)
            check_compile_support(self, self.network)
        self._rollout: ChunkedRollout | None = None
        self._compiled: CompiledPPOUpdate | None = None
        self._final_obs_buf = self._trunc_buf = None

    @classmethod
    def _config_class(cls):
        return PPOConfig

    def _obs_dtype(self) -> torch.dtype:
        sample = torch.as_tensor(self.env.single_observation_space.sample())
        return sample.dtype if sample.dtype in (torch.uint8, torch.bool) else torch.float32

    @property
    def batch_size(self) -> int:
        """Transitions per rollout: ``num_envs * num_steps``."""
        return self.config.num_envs * self.config.num_steps

    def _updates_per_rollout(self) -> int:
        return self.config.update_epochs * self.config.num_minibatches

    def _default_schedule(self, horizon_steps: int):
        from normrl.normalization import make_lr_schedule

        c = self.config
        total_updates = max(1, math.ceil(horizon_steps / self.batch_size)) * self._updates_per_rollout()
        warmup = min(c.lr_warmup_updates, total_updates - 1) if c.lr_schedule != "constant" else c.lr_warmup_updates
        return make_lr_schedule(c.lr_schedule, c.learning_rate, total_updates, warmup_steps=warmup)

    def networks(self) -> list[nn.Module]:
        """``[network]`` (the actor-critic)."""
        return [self.network]

    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        logits, _ = self.network(obs)
        if deterministic:
            return logits.argmax(-1)
        return sample_actions(logits, self.generator)[0]

    # -- training --------------------------------------------------------------------------
    def learn(self, total_steps: int, progress: bool = True) -> "PPO":
        """Train for ``total_steps`` more env steps, rounded up to whole rollouts of
        ``num_envs * num_steps``; counters, schedule and RNG continue from before."""
        self._check_learn_steps(total_steps)
        c = self.config
        if self.lr_schedule is None:
            self.lr_schedule = self._default_schedule(total_steps)
        net, buf = self.network, self.buffer
        update = self._compiled_update() if c.compile else None
        if self._rollout is None:
            self._rollout = ChunkedRollout(self, min(c.rollout_chunk, c.num_steps), compiled=c.compile)
        iterations = math.ceil(total_steps / self.batch_size)
        bar = self._progress_bar(iterations * self.batch_size, progress)
        self.episode_log.restart_clock(self.num_steps)
        obs = self._current_obs()
        start = self.num_steps
        try:
            for _ in range(iterations):
                # ---- rollout: num_steps batched env steps, no host sync -------------------
                net.train(False)
                with torch.no_grad():
                    obs, any_final, self._final_obs_buf, self._trunc_buf = self._rollout.collect(
                        obs, self._final_obs_buf, self._trunc_buf)
                    self.num_steps += self.batch_size
                    # ---- bootstrap truncated episodes from V(final_obs), one sync -------
                    if any_final:
                        idx = self._trunc_buf.nonzero(as_tuple=True)
                        if idx[0].numel():
                            buf.rewards[idx] += c.gamma * net.value(self._final_obs_buf[idx])
                    next_value = net.value(obs)
                # ---- update: update_epochs passes of num_minibatches minibatches ---------
                net.train(True)
                if update is not None:  # GAE and every minibatch step in one compiled call
                    stats = update(buf.rewards, buf.values, buf.dones, next_value)
                    if self.monitor is not None:
                        flat_obs = buf.obs.reshape((-1,) + buf.obs.shape[2:])
                        for _ in range(self._updates_per_rollout()):
                            self._monitor_update(flat_obs, stats["entropy"])
                else:
                    with torch.no_grad():
                        advantages, returns = compute_gae(buf.rewards, buf.values, buf.dones, next_value, c.gamma, c.gae_lambda)
                    stats = self._update(advantages, returns)
                self._check_divergence()  # non-finite loss/gradient/parameters: one small read per rollout
                # ---- logging: one host sync per rollout ----------------------------------
                self.episode_log.flush(self.num_steps, self.writer)
                self._log_interventions()
                if self.writer is not None:
                    for name, value in stats.items():
                        self.writer.add_scalar(f"losses/{name}", float(value), self.num_steps)
                    self.writer.add_scalar("charts/learning_rate", self.optimizer.param_groups[0]["lr"], self.num_steps)
                self._log_progress(bar, self.num_steps - start)
        finally:
            self._obs = obs
            if bar is not None:
                bar.close()
        return self

    def _compiled_update(self) -> CompiledPPOUpdate:
        """The compiled update (built at the first ``learn`` with ``compile=True``);
        the support check runs at every ``learn``, since interventions may be attached
        after construction."""
        check_compile_support(self, self.network)
        if self._compiled is None:
            self._compiled = CompiledPPOUpdate(self)
        return self._compiled

    def _update(self, advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, torch.Tensor]:
        c, buf, net = self.config, self.buffer, self.network
        n = self.batch_size
        b_obs = buf.obs.reshape((n,) + buf.obs.shape[2:])
        b_actions, b_log_probs = buf.actions.reshape(n), buf.log_probs.reshape(n)
        b_values, b_adv, b_returns = buf.values.reshape(n), advantages.reshape(n), returns.reshape(n)
        b_tasks = buf.task_ids.reshape(n)
        mb = n // c.num_minibatches
        totals: dict[str, torch.Tensor] = {}
        count = 0
        for _ in range(c.update_epochs):
            perm = torch.randperm(n, device=self.device, generator=self.generator)
            kls = []
            for start in range(0, n, mb):
                idx = perm[start : start + mb]
                for setter in self._task_setters:
                    setter(b_tasks[idx])
                logits, values = net(b_obs[idx])
                loss, parts = ppo_loss(
                    logits, values, b_actions[idx], b_log_probs[idx], b_values[idx], b_adv[idx], b_returns[idx],
                    c.clip_coef, c.clip_vloss, c.ent_coef, c.vf_coef, c.norm_adv,
                )
                if c.aux_loss_coef > 0:
                    loss = loss + c.aux_loss_coef * adab2n_aux_loss(net)
                self._optimizer_step(loss)
                if self.monitor is not None:
                    self._monitor_update(b_obs, parts["entropy"])
                for k, v in parts.items():
                    totals[k] = totals[k] + v if k in totals else v
                count += 1
                kls.append(parts["approx_kl"])
            if c.target_kl is not None and float(torch.stack(kls).mean()) > c.target_kl:
                break
        return {k: v / count for k, v in totals.items()}

    def _monitor_update(self, b_obs: torch.Tensor, entropy: torch.Tensor) -> None:
        if not self._probe_set:
            self.monitor.set_probe(b_obs[: min(256, b_obs.shape[0])].clone())
            self._probe_set = True
        self.monitor.after_update(self.num_steps, policy_entropy=entropy)

    # -- checkpoints -----------------------------------------------------------------------
    def _algo_state(self) -> dict[str, Any]:
        return {"network": self.network.state_dict(), **self._training_state()}

    def _load_algo_state(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self._load_training_state(state)
