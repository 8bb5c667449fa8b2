"""PPO's update as compiled calls (``PPOConfig(compile=True)``): GAE in one small
graph, then each epoch of the clipped-objective update (all its minibatch steps) as one
``torch.compile`` graph, called ``update_epochs`` times.

The eager :meth:`normrl.agents.PPO._update` is the reference; this computes the same
steps (same minibatch permutations, drawn from the agent's generator before each epoch
as the eager loop draws them; the LR of each step from the schedule; Adam and global-norm
clipping as :mod:`normrl.agents.common.functional_adam`; the divergence guard's value of
each step, and with ``on_divergence="skip-update"`` the skip of a non-finite one, as
:meth:`~normrl.agents.common.compiled_training.FunctionalTraining.step`) and so gives
the same parameters up to float rounding. Gradients come from ``torch.func.grad`` of a
``functional_call`` of the network, so no ``.grad`` is left on the parameters.

One graph per epoch rather than one for the whole update: inductor's compile time grows
with the unrolled minibatch steps (on a 2-core CPU, minutes for 16), while a call costs
tens of microseconds; and ``target_kl`` needs the mean KL of an epoch on the host before
deciding on the next one, which then falls between two calls exactly as in the eager
loop (the next epoch's permutation is drawn only if that epoch runs).
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad

from normrl.agents.common.compiled_training import FunctionalTraining, compile_fn
from normrl.agents.common.gae import compute_gae
from normrl.agents.ppo.loss import ppo_loss

#: the loss parts returned per update, in this order
STAT_NAMES = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")


def flat_rollout(obs, actions, log_probs, values, advantages, returns) -> tuple:
    """A rollout's ``(T, N, ...)`` tensors as ``(T * N, ...)`` minibatch sources."""
    n = values.numel()
    return (obs.reshape((n,) + obs.shape[2:]), actions.reshape(n), log_probs.reshape(n), values.reshape(n),
            advantages.reshape(n), returns.reshape(n))


def ppo_minibatch_step(net, training: FunctionalTraining, c, p, m, v, step, lr, flag, idx, batch, nap_targets=None):
    """One clipped-objective minibatch step of one agent, pure: the loss of the samples
    ``idx`` of ``batch`` (:func:`flat_rollout`) through ``functional_call(net)`` with the
    flat parameters ``p``, its gradient, then ``training.step`` (clip, Adam, NaP
    projection to ``nap_targets`` or the projector's own, the divergence check) from
    Adam's step count ``step`` before it. Returns ``(p, m, v, step, loss parts stacked
    in STAT_NAMES order, check)``. The stacked update of a seed axis runs it under
    ``vmap`` over the seeds."""
    b_obs, b_actions, b_log_probs, b_values, b_adv, b_returns = batch

    def loss_fn(p_):
        logits, vals = functional_call(net, dict(zip(training.names, training.unflat(p_))), (b_obs[idx],))
        loss, parts = ppo_loss(logits, vals, b_actions[idx], b_log_probs[idx], b_values[idx], b_adv[idx],
                               b_returns[idx], c.clip_coef, c.clip_vloss, c.ent_coef, c.vf_coef, c.norm_adv)
        return loss, (torch.stack([parts[k] for k in STAT_NAMES]), loss.detach())

    grads, (parts, loss) = grad(loss_fn, has_aux=True)(p)
    p, m, v, step, check = training.step(p, grads, m, v, step, lr, flag, loss, nap_targets)
    return p, m, v, step, parts, check


class CompiledPPOUpdate:
    """Callable ``(rewards, values, dones, next_value) -> stats``: GAE and the update of
    ``agent.network`` from the rollout in ``agent.buffer`` (rewards already bootstrapped
    at truncations), returning the mean loss parts over the minibatch steps taken.
    ``compiled=False`` runs the same function eagerly (for tests of its math)."""

    def __init__(self, agent, compiled: bool = True):
        self.agent = agent
        self.training = FunctionalTraining(agent, agent.network)
        self.compiled = compiled
        self._gae_fn = compile_fn(self._gae, agent.device) if compiled else self._gae
        self._epoch_fn = compile_fn(self._epoch, agent.device) if compiled else self._epoch

    def _gae(self, rewards, values, dones, next_value):
        c = self.agent.config
        return compute_gae(rewards, values, dones, next_value, c.gamma, c.gae_lambda)

    def _epoch(self, params, exp_avgs, exp_avg_sqs, steps, lrs, flags, perm, obs, actions, log_probs, values, advantages,
               returns):
        c, tr = self.agent.config, self.training
        n = values.numel()
        batch = flat_rollout(obs, actions, log_probs, values, advantages, returns)
        mb = n // c.num_minibatches
        p, m, v, step = tr.flat([t.detach() for t in params]), tr.flat(exp_avgs), tr.flat(exp_avg_sqs), steps[0]
        totals = torch.zeros(len(STAT_NAMES), device=values.device)
        checks = []
        for k, start in enumerate(range(0, n, mb)):
            p, m, v, step, parts, check = ppo_minibatch_step(self.agent.network, tr, c, p, m, v, step, lrs[k], flags[k],
                                                             perm[start : start + mb], batch)
            totals = totals + parts
            checks.append(check)
        tr.write_back(params, exp_avgs, exp_avg_sqs, steps, p, m, v, step)
        return totals, torch.stack(checks)

    def __call__(self, rewards, values, dones, next_value) -> dict[str, torch.Tensor]:
        agent, c, buf = self.agent, self.agent.config, self.agent.buffer
        n = agent.batch_size
        cuda = self.compiled and agent.device.type == "cuda"
        if cuda:
            torch.compiler.cudagraph_mark_step_begin()
        advantages, returns = self._gae_fn(rewards, values, dones, next_value)
        if cuda:  # CUDA-graph outputs are overwritten by the graph's next replay
            advantages, returns = advantages.clone(), returns.clone()
        totals, count, updates_before = None, 0, agent.num_updates
        for _ in range(c.update_epochs):
            perm = torch.randperm(n, device=agent.device, generator=agent.generator)
            epoch_start = agent.num_updates
            lrs, flags = self.training.plan(c.num_minibatches)
            if cuda:
                torch.compiler.cudagraph_mark_step_begin()
            out, checks = self._epoch_fn(*self.training.tensors(), lrs, flags, perm, buf.obs, buf.actions, buf.log_probs,
                                         values, advantages, returns)
            self.training.record(checks, epoch_start)  # copied before the next replay overwrites it
            totals = out.clone() if totals is None else totals + out
            count += c.num_minibatches
            if c.target_kl is not None and float(out[STAT_NAMES.index("approx_kl")]) / c.num_minibatches > c.target_kl:
                break
        self.training.log_after_call(updates_before)
        means = totals / count
        return {name: means[i] for i, name in enumerate(STAT_NAMES)}
