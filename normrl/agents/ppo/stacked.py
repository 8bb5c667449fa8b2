"""The seed axis of PPO: S independent PPO agents (one per seed) trained as one, with
their parameters and Adam moments stacked (:class:`~normrl.agents.common.stacked.StackedTraining`),
their envs stepped as one batch (:class:`~normrl.envs.SeedBlocks`), the policy forward
and the update ``vmap``-ped over the seeds (the approach of PureJaxRL's vmapped seeds,
here with ``torch.func``).

Seed k of a :class:`StackedPPO` does what ``PPO(make_env(..., seed=k), PPOConfig(seed=k))``
does on its own, up to float rounding: the same initial network (each agent is built as
the single run builds it), the same env episodes (its env block draws from its own
generator), the same sampling and minibatch permutations (its agent's generator), its
own gradient clipping, Adam state, LR schedule and NaP projection, its own episode
statistics, TensorBoard writer and summary. Each agent keeps seeing its current
parameters and optimizer state through its own modules (views of the stacked rows), so
it can be evaluated and checkpointed as the single agent it is.

Supported: envs with a functional view (CartPole, the MinAtar games; Seaquest with fixed
list widths), norms without running statistics (networks without buffers), Adam/AdamW.
Refused with a ValueError: networks with buffers (batchnorm and the other running-statistics
norms), plasticity interventions, AdaB²N's auxiliary loss, ``hessian_every``,
``target_kl`` (an early stop per seed would split the seeds' epochs), envs stepped one
call at a time (Atari, gymnasium adapters).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from normrl.agents.common.compiled_training import compile_fn
from normrl.agents.common.functional_env import functional_env
from normrl.agents.common.stacked import StackedPolicy, StackedTraining, seed_rows
from normrl.agents.common.episode_log import EpisodeLog
from normrl.agents.common.rollout_buffer import RolloutBuffer
from normrl.agents.ppo.compiled_update import STAT_NAMES
from normrl.agents.ppo.rollout import ChunkedRollout
from normrl.agents.ppo.stacked_update import StackedPPOUpdate
from normrl.envs.seed_blocks import SeedBlocks

#: norms whose networks carry no running statistics (the ones the seed axis trains)
SEED_AXIS_NORMS = ("none", "layernorm", "rmsnorm", "crmsnorm", "dyt", "nap", "groupnorm", "evonorm_s0")


def check_seed_axis_support(agents: Sequence) -> None:
    """Raise ValueError naming the first thing of ``agents`` (PPO agents, one per seed)
    that a :class:`StackedPPO` cannot train (see the module docstring)."""
    from normrl.agents.ppo.agent import PPO

    if len(agents) < 1 or not all(isinstance(a, PPO) for a in agents):
        raise ValueError(f"StackedPPO needs a non-empty list of PPO agents, got {[type(a).__name__ for a in agents]}")
    first = agents[0]
    for k, a in enumerate(agents):
        if dataclasses.replace(a.config, seed=first.config.seed) != first.config:
            raise ValueError(f"stacked seeds must share one config except the seed: seed index {k}'s differs from seed index 0's")
        if a.num_steps != first.num_steps or a.num_updates != first.num_updates:
            raise ValueError("stacked seeds must be at the same env step and update count")
    if len({id(a.env) for a in agents}) != len(agents):
        raise ValueError("stacked seeds need one env object per seed")
    c = first.config
    buffers = sorted({name.rsplit(".", 1)[0] for name, _ in first.network.named_buffers()})
    if buffers:
        raise ValueError(f"the seed axis supports norms without running statistics ({', '.join(SEED_AXIS_NORMS)}); "
                         f"norm {c.norm!r} keeps buffers in {', '.join(buffers[:3])}")
    if any(a.interventions for a in agents):
        raise ValueError("the seed axis does not support plasticity interventions yet; train the seeds as separate runs")
    if c.aux_loss_coef > 0 or first._task_setters:
        raise ValueError("the seed axis does not support AdaB²N's auxiliary loss or per-sample task ids")
    if c.hessian_every:
        raise ValueError("the seed axis does not support hessian_every; use hessian_every=0 or separate runs")
    if c.target_kl is not None:
        raise ValueError("the seed axis does not support target_kl (each seed would stop its epochs at a different "
                         "point); use target_kl=None or separate runs")
    dtypes = {p.dtype for p in first.network.parameters()}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
        raise ValueError(f"the seed axis needs parameters of one floating dtype, got {sorted(map(str, dtypes))}")


class StackedPPO:
    """S PPO agents (one per seed, each built exactly as a single run of its seed)
    trained together in one process (see the module docstring).

    Args:
        agents: the per-seed :class:`~normrl.agents.PPO` agents: one config except
            ``seed``, one env object each (same kind, ``num_envs`` and device), at the
            same step count. Their own ``learn`` must not be called while stacked.

    Attributes: ``agents``, ``env`` (the :class:`~normrl.envs.SeedBlocks` of their envs),
    ``training`` (the stacked parameters and Adam moments), ``num_seeds``.
    """

    ALGO = "ppo"

    def __init__(self, agents: Sequence):
        agents = list(agents)
        check_seed_axis_support(agents)
        self.agents = agents
        self.num_seeds = len(agents)
        self.config = agents[0].config
        self.device = agents[0].device
        self.n_actions = agents[0].n_actions
        self.task_id = 0
        self.env = SeedBlocks([a.env for a in agents])
        if functional_env(self.env) is None:
            raise ValueError(f"the seed axis needs envs with a functional step (CartPole, MinAtar); {agents[0].env!r} "
                             "is stepped one call at a time; train the seeds as separate runs")
        self.training = StackedTraining(agents, [a.network for a in agents])
        self.policy = StackedPolicy(agents[0].network, self.training.training, self.training.params)
        c = self.config
        self.buffer = RolloutBuffer(c.num_steps, self.env.num_envs, agents[0].buffer.obs.shape[2:], agents[0].buffer.obs.dtype,
                                    self.device)
        self.episode_log = EpisodeLog()  # the joint pending rows; each agent's own log does the accounting
        self._rollout = _StackedRollout(self, min(c.rollout_chunk, c.num_steps), compiled=c.compile)
        self._update = StackedPPOUpdate(self.training, compiled=c.compile)
        # the bootstrap's critic over all T x S x N final observations: compiled with the
        # rest (eager, its tanh alone took a tenth of a compiled CartPole run's time)
        self._values_fn = compile_fn(self._values_of_rows, self.device) if c.compile else self._values_of_rows
        self._final_obs_buf = self._trunc_buf = None
        self._obs = None

    @property
    def num_steps(self) -> int:
        """Env steps of each seed so far (the same for all)."""
        return self.agents[0].num_steps

    @property
    def seed_batch_size(self) -> int:
        """Transitions per rollout of one seed: ``num_envs * num_steps``."""
        return self.agents[0].batch_size

    def learn(self, total_steps: int) -> "StackedPPO":
        """Train every seed for ``total_steps`` more env steps (of its own), rounded up
        to whole rollouts, as each agent's ``PPO.learn(total_steps)`` would."""
        agents, c, buf = self.agents, self.config, self.buffer
        agents[0]._check_learn_steps(total_steps)
        for a in agents:
            if a.lr_schedule is None:
                a.lr_schedule = a._default_schedule(total_steps)
            a.episode_log.restart_clock(a.num_steps)
        iterations = math.ceil(total_steps / self.seed_batch_size)
        obs = self._obs if self._obs is not None else torch.cat([a._current_obs() for a in agents])
        try:
            for _ in range(iterations):
                with torch.no_grad():
                    obs, any_final, self._final_obs_buf, self._trunc_buf = self._rollout.collect(
                        obs, self._final_obs_buf, self._trunc_buf)
                    for a in agents:
                        a.num_steps += self.seed_batch_size
                    if any_final:  # bootstrap truncated episodes from V(final_obs), without a host sync
                        if c.compile and self.device.type == "cuda":
                            torch.compiler.cudagraph_mark_step_begin()
                        final_values = self._values_fn(self._final_obs_buf)
                        torch.where(self._trunc_buf, buf.rewards + c.gamma * final_values, buf.rewards, out=buf.rewards)
                    next_value = self.policy.value(obs)
                stats = self._update(buf, next_value)
                self._check_divergence()
                self._log(stats)
        finally:
            self._obs = obs
            n = self.env.envs_per_seed
            for k, a in enumerate(agents):
                a._obs = obs[k * n : (k + 1) * n].clone()
            self.env.sync_blocks()
        return self

    def _check_divergence(self) -> None:
        """Each seed's divergence guard (a single run's check per rollout): the first seed
        with a non-finite loss, gradient norm or parameter stops the stacked run with its
        :class:`~normrl.utils.errors.TrainingDiverged`, its seed added to the facts."""
        from normrl.utils.errors import TrainingDiverged

        for a in self.agents:
            try:
                a._check_divergence()
            except TrainingDiverged as exc:
                raise TrainingDiverged(f"seed {a.config.seed}: {exc}", {**exc.facts, "seed": a.config.seed}) from exc

    def _values_of_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The values ``(T, S*N)`` of rollout-shaped observations ``(T, S*N, ...)``, each
        column by its own seed's critic."""
        t, sn = rows.shape[:2]
        per_seed = seed_rows(rows, self.num_seeds)  # (S, T*N, ...)
        values = self.policy.value(per_seed.reshape((-1,) + per_seed.shape[2:]))  # seed-major rows
        return values.reshape(self.num_seeds, t, sn // self.num_seeds).transpose(0, 1).reshape(t, sn)

    def _log(self, stats: torch.Tensor) -> None:
        """Per seed: monitor, episode statistics, losses and LR, into its own writer."""
        agents, buf = self.agents, self.buffer
        monitored = [a for a in agents if a.monitor is not None]
        if monitored:
            obs_rows = seed_rows(buf.obs, self.num_seeds)
            for k, a in enumerate(agents):
                if a.monitor is not None:
                    for _ in range(a._updates_per_rollout()):
                        a._monitor_update(obs_rows[k], stats[k, STAT_NAMES.index("entropy")])
        pending = self.episode_log.pending_on_host()  # (2, T*S*N): one host sync for all seeds
        per_seed = pending.view(2, -1, self.num_seeds, self.env.envs_per_seed)
        host_stats = stats.cpu() if any(a.writer is not None for a in agents) else None
        for k, a in enumerate(agents):
            log = a.episode_log
            log.tick(a.num_steps, a.writer)
            rows = per_seed[:, :, k].reshape(2, -1)
            finished = ~torch.isnan(rows[0])
            log.log_episodes(a.num_steps, rows[0][finished].tolist(), rows[1][finished].tolist(), a.writer)
            if a.writer is not None:
                for i, name in enumerate(STAT_NAMES):
                    a.writer.add_scalar(f"losses/{name}", float(host_stats[k, i]), a.num_steps)
                a.writer.add_scalar("charts/learning_rate", a.optimizer.param_groups[0]["lr"], a.num_steps)

    def summaries(self) -> list[dict]:
        """Each seed's ``agent.summary()``."""
        return [a.summary() for a in self.agents]

    def close(self) -> None:
        """Close every agent's writer."""
        for a in self.agents:
            a.close()


class _StackedRollout(ChunkedRollout):
    """:class:`ChunkedRollout` of all seeds: the stacked policy and each seed's sampling
    uniforms from its own generator (episode rows go to the stacked agent's joint log)."""

    def policy(self):
        return self.agent.policy

    def policy_noise(self, k: int) -> torch.Tensor:
        st = self.agent
        n = st.env.envs_per_seed
        return torch.cat([torch.rand((k, n, st.n_actions), device=st.device, generator=a.generator) for a in st.agents], dim=1)
