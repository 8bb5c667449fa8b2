"""The PPO update of S seeds at once (the seed axis, :class:`~normrl.agents.ppo.stacked.StackedPPO`):
GAE over all ``S * N`` sub-env columns, then each epoch's minibatch steps as
``torch.func.vmap`` over the seeds of :func:`~normrl.agents.ppo.compiled_update.ppo_minibatch_step`
(the loss through ``functional_call``, ``torch.func.grad``, global-norm clipping, Adam,
the NaP projection to each seed's own target norms, each seed's divergence check and,
with ``on_divergence="skip-update"``, its own skips), reading and writing the ``[S, P]``
rows of :class:`~normrl.agents.common.stacked.StackedTraining`.

Seed k computes what a single run with seed k computes: GAE is per sub-env column; its
minibatch permutation of each epoch is drawn from its own agent's generator as the
single run draws it; its loss, gradient norm, advantage normalization and Adam moments
see only its own row and its own rollout. With ``compiled`` each epoch is one
``torch.compile`` graph (as :class:`~normrl.agents.ppo.compiled_update.CompiledPPOUpdate`);
without it the same function runs eagerly.
"""
from __future__ import annotations

import functools

import torch
from torch.func import vmap

from normrl.agents.common.compiled_training import compile_fn
from normrl.agents.common.gae import compute_gae
from normrl.agents.common.stacked import StackedTraining, seed_rows
from normrl.agents.ppo.compiled_update import STAT_NAMES, ppo_minibatch_step


class StackedPPOUpdate:
    """Callable ``(buffer, next_value) -> stats (S, len(STAT_NAMES))``: GAE and the
    update of every seed from the joint rollout in ``buffer`` (``(T, S*N)`` tensors, seed
    k on columns ``k*N:(k+1)*N``; rewards already bootstrapped at truncations); the mean
    loss parts of each seed over its minibatch steps."""

    def __init__(self, stacked: StackedTraining, compiled: bool):
        self.stacked = stacked
        self.agent0 = stacked.agents[0]
        self.config = self.agent0.config
        self.device = stacked.params.device
        self.compiled = compiled
        if compiled and self.device.type == "cuda":  # CUDA graphs write these in place
            for t in (stacked.params, stacked.exp_avgs, stacked.exp_avg_sqs, stacked.step):
                torch._dynamo.mark_static_address(t)
        self._gae_fn = compile_fn(self._gae, self.device) if compiled else self._gae
        self._epoch_fn = compile_fn(self._epoch, self.device) if compiled else self._epoch

    def _gae(self, rewards, values, dones, next_value):
        c = self.config
        return compute_gae(rewards, values, dones, next_value, c.gamma, c.gae_lambda)

    def _epoch(self, params, exp_avgs, exp_avg_sqs, step_count, lrs, flags, perms, nap_targets, obs, actions, log_probs,
               values, advantages, returns):
        c, st = self.config, self.stacked
        s = params.shape[0]
        batch = tuple(seed_rows(x, s) for x in (obs, actions, log_probs, values, advantages, returns))
        n = batch[3].shape[1]
        mb = n // c.num_minibatches
        one_seed = functools.partial(ppo_minibatch_step, self.agent0.network, st.training, c)
        # p, m, v, step, lr, flag, idx, batch, nap_targets: per seed except the LR and the NaP flag
        step_all = vmap(one_seed, in_dims=(0, 0, 0, 0, None, None, 0, 0, None if nap_targets is None else 0))
        p, m, v, step = params, exp_avgs, exp_avg_sqs, step_count
        totals = torch.zeros((s, len(STAT_NAMES)), device=values.device)
        checks = []
        for k, start in enumerate(range(0, n, mb)):
            p, m, v, step, parts, check = step_all(p, m, v, step, lrs[k], flags[k], perms[:, start : start + mb], batch,
                                                   nap_targets)
            totals = totals + parts
            checks.append(check)
        with torch.no_grad():
            params.copy_(p)
            exp_avgs.copy_(m)
            exp_avg_sqs.copy_(v)
            step_count.copy_(step)
        return totals, torch.stack(checks, dim=1)

    def __call__(self, buffer, next_value: torch.Tensor) -> torch.Tensor:
        st, c = self.stacked, self.config
        n = buffer.num_steps * (buffer.num_envs // st.num_seeds)
        cuda = self.compiled and self.device.type == "cuda"
        if cuda:
            torch.compiler.cudagraph_mark_step_begin()
        advantages, returns = self._gae_fn(buffer.rewards, buffer.values, buffer.dones, next_value)
        if cuda:  # CUDA-graph outputs are overwritten by the graph's next replay
            advantages, returns = advantages.clone(), returns.clone()
        totals = None
        updates_before = self.agent0.num_updates
        for _ in range(c.update_epochs):
            perms = torch.stack([torch.randperm(n, device=self.device, generator=a.generator) for a in st.agents])
            epoch_start = self.agent0.num_updates
            lrs, flags = st.plan(c.num_minibatches)
            if cuda:
                torch.compiler.cudagraph_mark_step_begin()
            out, checks = self._epoch_fn(st.params, st.exp_avgs, st.exp_avg_sqs, st.step, lrs, flags, perms, st.nap_targets,
                                         buffer.obs, buffer.actions, buffer.log_probs, buffer.values, advantages, returns)
            for k, tr in enumerate(st.trainings):  # each seed's divergence checks to its own guard
                tr.record(checks[k], epoch_start)
            totals = out.clone() if totals is None else totals + out
        st.sync_steps()
        for tr in st.trainings:
            tr.log_after_call(updates_before)
        return totals / (c.update_epochs * c.num_minibatches)
