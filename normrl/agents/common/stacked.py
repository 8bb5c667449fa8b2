"""The seed axis's shared pieces: S agents of one architecture trained as one, their
parameters and Adam moments stacked as rows of ``[S, P]`` tensors.

:class:`StackedTraining` takes S fully built agents (one per seed, each exactly as a
single run with that seed builds it) and moves their trained parameters and Adam state
into three ``[S, P]`` tensors (parameters, ``exp_avg``, ``exp_avg_sq``; ``P`` the
parameter count, in :class:`~normrl.agents.common.compiled_training.FunctionalTraining`'s
flat layout), re-pointing every agent's own tensors at views of its row
(``param.data``, ``optimizer.state[param]``). A stacked update writes the rows; each
agent keeps seeing its current parameters and moments through its own modules and
optimizer, so it can act, be evaluated, be monitored and be checkpointed as the single
agent it is, and a per-seed checkpoint loads into a single run.

:class:`StackedPolicy` is the forward of all seeds at once: ``vmap`` over the rows of a
``functional_call`` of one agent's network (all agents share its structure), on
observations laid out seed-major (seed k on rows ``k*N:(k+1)*N``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.func import functional_call, vmap

from normrl.agents.common.compiled_training import FunctionalTraining
from normrl.agents.common.functional_adam import adam_state


class StackedTraining:
    """The trained parameters, Adam states, LR schedules and NaP projections of S
    agents as ``[S, P]`` tensors and per-seed plans (see the module docstring).

    Args:
        agents: one agent per seed (same network structure and optimizer settings).
        models: the trained network of each agent.

    Attributes ``params``, ``exp_avgs``, ``exp_avg_sqs`` (``[S, P]``), ``step`` (``[S]``
    float32, each seed's Adam step count: equal unless ``on_divergence="skip-update"``
    skipped steps of some seeds) and ``nap_targets`` (each
    seed's NaP target norms stacked, or None) are what a stacked update reads and
    writes. Call :meth:`bind` again after loading checkpoints into the agents.
    """

    def __init__(self, agents: list, models: list[nn.Module]):
        self.agents, self.models = list(agents), list(models)
        self.trainings = [FunctionalTraining(a, m) for a, m in zip(self.agents, self.models)]
        first = self.trainings[0]
        for k, tr in enumerate(self.trainings[1:], 1):
            same = ([(n, p.shape, p.dtype) for n, p in zip(tr.names, tr.params)]
                    == [(n, p.shape, p.dtype) for n, p in zip(first.names, first.params)]
                    and tr.settings == first.settings and tr.max_grad_norm == first.max_grad_norm
                    and (tr.projection is None) == (first.projection is None))
            if not same:
                raise ValueError(f"stacked seeds need one network structure and optimizer setting: seed {k}'s differ from seed 0's")
        self.num_seeds = len(self.agents)
        self.bind()

    @property
    def training(self) -> FunctionalTraining:
        """Seed 0's :class:`FunctionalTraining`: the layout every seed shares."""
        return self.trainings[0]

    def bind(self) -> None:
        """Build the ``[S, P]`` tensors from the agents' current parameters and Adam
        states (created as torch's Adam would when missing) and point those at the rows."""
        tr0 = self.training
        states = [adam_state(a.optimizer, tr.params) for a, tr in zip(self.agents, self.trainings)]
        steps = []
        for _, _, st in states:
            own = {float(s) for s in st}
            if len(own) != 1:
                raise ValueError(f"an agent's parameters must be at one Adam step, got steps {sorted(own)}")
            steps.append(own.pop())
        with torch.no_grad():
            self.params = torch.stack([tr0.flat([p.detach() for p in tr.params]) for tr in self.trainings])
            self.exp_avgs = torch.stack([tr0.flat(m) for m, _, _ in states])
            self.exp_avg_sqs = torch.stack([tr0.flat(v) for _, v, _ in states])
        self.step = torch.tensor(steps, dtype=torch.float32, device=self.params.device)
        for k, (agent, tr) in enumerate(zip(self.agents, self.trainings)):
            views = zip(tr.params, tr0.unflat(self.params[k]), tr0.unflat(self.exp_avgs[k]), tr0.unflat(self.exp_avg_sqs[k]))
            for p, p_row, m_row, v_row in views:
                p.data = p_row
                agent.optimizer.state[p]["exp_avg"] = m_row
                agent.optimizer.state[p]["exp_avg_sq"] = v_row
        self.nap_targets = None
        if tr0.projection is not None:
            targets = [tr.projection.targets() for tr in self.trainings]
            weights = [torch.stack([t[0][j] for t in targets]) for j in range(len(targets[0][0]))]
            joint = None if targets[0][1] is None else torch.stack([t[1] for t in targets])
            self.nap_targets = (weights, joint)

    def plan(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The LRs and NaP flags of the next ``count`` steps (every seed's schedule
        advances; the values are seed 0's: the seeds share one config)."""
        planned = self.training.plan(count)  # seed 0's parameters are views of self.params: the same device
        for tr in self.trainings[1:]:
            tr.advance(count)
        return planned

    def sync_steps(self) -> None:
        """Write each seed's step count into its agent's Adam state."""
        for k, (agent, tr) in enumerate(zip(self.agents, self.trainings)):
            for p in tr.params:
                agent.optimizer.state[p]["step"].copy_(self.step[k])


class StackedPolicy:
    """``obs (S*N, ...) -> (logits (S*N, A), values (S*N,))`` of S seeds at once:
    ``vmap`` over the rows of ``params`` (``[S, P]``) of ``functional_call(template)``,
    seed k on observation rows ``k*N:(k+1)*N``. ``template``: one agent's network
    (its own parameter values are not used)."""

    def __init__(self, template: nn.Module, training: FunctionalTraining, params: torch.Tensor):
        self.template, self.training, self.params = template, training, params

    def _one(self, p: torch.Tensor, obs: torch.Tensor):
        return functional_call(self.template, dict(zip(self.training.names, self.training.unflat(p))), (obs,))

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.params.shape[0]
        logits, values = vmap(self._one)(self.params, obs.reshape((s, -1) + obs.shape[1:]))
        return logits.reshape((-1,) + logits.shape[2:]), values.reshape(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """The values ``(S*N,)`` only."""
        return self(obs)[1]


def seed_rows(x: torch.Tensor, num_seeds: int) -> torch.Tensor:
    """A rollout tensor ``(T, S*N, ...)`` as ``(S, T*N, ...)``: seed k's ``(T, N)`` block
    flattened in the order a single run's update flattens its own rollout."""
    t, sn = x.shape[:2]
    n = sn // num_seeds
    rest = x.shape[2:]
    return x.reshape((t, num_seeds, n) + rest).transpose(0, 1).reshape((num_seeds, t * n) + rest)
