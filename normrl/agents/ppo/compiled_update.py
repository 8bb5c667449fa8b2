"""PPO's update as one compiled call (``PPOConfig(compile=True)``): GAE, then every
epoch and minibatch of the clipped-objective update, in one ``torch.compile`` graph.

The eager :meth:`normrl.agents.PPO._update` is the reference; this computes the same
steps (same minibatch permutations, drawn from the agent's generator before the call in
the order the eager loop draws them; the LR of each step from the schedule; Adam and
global-norm clipping as :mod:`normrl.agents.common.functional_adam`) and so gives the
same parameters up to float rounding. Gradients come from ``torch.func.grad`` of a
``functional_call`` of the network, so no ``.grad`` is left on the parameters.

``target_kl`` needs the mean KL of an epoch before deciding on the next one (a host
sync): with it set, the update is compiled per epoch and the stop is decided between
calls, exactly as the eager loop decides it (the next epoch's permutation is drawn only
if that epoch runs). Without it, all epochs are one call.
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad

from normrl.agents.common.compiled_training import FunctionalTraining, compile_fn
from normrl.agents.common.gae import compute_gae
from normrl.agents.ppo.loss import ppo_loss

#: the loss parts returned per update, in this order
STAT_NAMES = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")


class CompiledPPOUpdate:
    """Callable ``(rewards, values, dones, next_value) -> stats``: GAE and the update of
    ``agent.network`` from the rollout in ``agent.buffer`` (rewards already bootstrapped
    at truncations), returning the mean loss parts over the minibatch steps taken.
    ``compiled=False`` runs the same function eagerly (for tests of its math)."""

    def __init__(self, agent, compiled: bool = True):
        self.agent = agent
        self.training = FunctionalTraining(agent, agent.network)
        self.compiled = compiled
        self._fn = compile_fn(self._update, agent.device) if compiled else self._update

    def _update(self, params, exp_avgs, exp_avg_sqs, steps, lrs, flags, perms, obs, actions, log_probs, values,
                rewards, dones, next_value):
        c, tr, net = self.agent.config, self.training, self.agent.network
        advantages, returns = compute_gae(rewards, values, dones, next_value, c.gamma, c.gae_lambda)
        n = values.numel()
        b_obs = obs.reshape((n,) + obs.shape[2:])
        b_actions, b_log_probs, b_values = actions.reshape(n), log_probs.reshape(n), values.reshape(n)
        b_adv, b_returns = advantages.reshape(n), returns.reshape(n)
        mb = n // c.num_minibatches
        p = [t.detach() for t in params]
        m, v, step = list(exp_avgs), list(exp_avg_sqs), steps[0]

        def loss_fn(p_, idx):
            logits, vals = functional_call(net, dict(zip(tr.names, p_)), (b_obs[idx],))
            loss, parts = ppo_loss(logits, vals, b_actions[idx], b_log_probs[idx], b_values[idx], b_adv[idx],
                                   b_returns[idx], c.clip_coef, c.clip_vloss, c.ent_coef, c.vf_coef, c.norm_adv)
            return loss, torch.stack([parts[k] for k in STAT_NAMES])

        totals = torch.zeros(len(STAT_NAMES), device=values.device)
        k = 0
        for e in range(perms.shape[0]):
            for start in range(0, n, mb):
                grads, parts = grad(loss_fn, has_aux=True)(p, perms[e, start : start + mb])
                step = step + 1
                p, m, v = tr.step(p, grads, m, v, step, lrs[k], flags[k])
                totals = totals + parts
                k += 1
        tr.write_back(params, exp_avgs, exp_avg_sqs, steps, p, m, v, step)
        return totals

    def __call__(self, rewards, values, dones, next_value) -> dict[str, torch.Tensor]:
        agent, c, buf = self.agent, self.agent.config, self.agent.buffer
        n = agent.batch_size
        epochs_per_call = 1 if c.target_kl is not None else c.update_epochs
        totals, count = None, 0
        for _ in range(0, c.update_epochs, epochs_per_call):
            perms = torch.stack([torch.randperm(n, device=agent.device, generator=agent.generator) for _ in range(epochs_per_call)])
            lrs, flags = self.training.plan(epochs_per_call * c.num_minibatches)
            if self.compiled and agent.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()
            out = self._fn(*self.training.tensors(), lrs, flags, perms, buf.obs, buf.actions, buf.log_probs,
                           values, rewards, dones, next_value)
            totals = out if totals is None else totals + out
            count += epochs_per_call * c.num_minibatches
            if c.target_kl is not None and float(out[STAT_NAMES.index("approx_kl")]) / c.num_minibatches > c.target_kl:
                break
        means = totals / count
        return {name: means[i] for i, name in enumerate(STAT_NAMES)}
