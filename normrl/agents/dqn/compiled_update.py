"""DQN's gradient update as one compiled call (``DQNConfig(compile=True)``): target and
online forwards of the next observations, the (Double) DQN target, the TD loss, its
gradient, clipping, Adam, the NaP projection and the divergence guard's value of the
step (a non-finite step kept from the parameters with ``on_divergence="skip-update"``)
in one ``torch.compile`` graph.

The eager :meth:`normrl.agents.DQN._update` is the reference: the batch is sampled the
same way (eagerly, from the agent's generator, before the call) and the step follows
:mod:`normrl.agents.common.functional_adam`, so parameters equal eager ones up to float
rounding. Gradients come from ``torch.func.grad``; no ``.grad`` is left on the
parameters.
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad

from normrl.agents.common.compiled_training import FunctionalTraining, compile_fn
from normrl.agents.dqn.loss import td_loss, td_targets


class CompiledDQNUpdate:
    """Callable ``(batch) -> {"td_loss", "q_values"}``: one update of
    ``agent.q_network`` from a :class:`~normrl.agents.common.replay_buffer.ReplaySample`.
    ``compiled=False`` runs the same function eagerly (for tests of its math)."""

    def __init__(self, agent, compiled: bool = True):
        self.agent = agent
        self.training = FunctionalTraining(agent, agent.q_network)
        self.compiled = compiled
        self._fn = compile_fn(self._update, agent.device) if compiled else self._update

    def _update(self, params, exp_avgs, exp_avg_sqs, steps, lrs, flags, obs, actions, rewards, next_obs, discounts):
        c, tr, agent = self.agent.config, self.training, self.agent
        p = tr.flat([t.detach() for t in params])
        with torch.no_grad():
            q_next_target = agent.target_network(next_obs)
            q_next_online = functional_call(agent.q_network, dict(zip(tr.names, tr.unflat(p))), (next_obs,)) if c.double_dqn else None
            targets = td_targets(q_next_online, q_next_target, rewards, discounts)

        def loss_fn(p_):
            q = functional_call(agent.q_network, dict(zip(tr.names, tr.unflat(p_))), (obs,)).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            loss = td_loss(q, targets, c.loss)
            return loss, (loss.detach(), q.detach().mean())

        grads, (loss, q_mean) = grad(loss_fn, has_aux=True)(p)
        new_p, new_m, new_v, step, check = tr.step(p, grads, tr.flat(exp_avgs), tr.flat(exp_avg_sqs), steps[0], lrs[0],
                                                   flags[0], loss)
        tr.write_back(params, exp_avgs, exp_avg_sqs, steps, new_p, new_m, new_v, step)
        return torch.stack([loss, q_mean, check])

    def __call__(self, batch) -> dict[str, torch.Tensor]:
        updates_before = self.agent.num_updates
        lrs, flags = self.training.plan(1)
        if self.compiled and self.agent.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        out = self._fn(*self.training.tensors(), lrs, flags, batch.obs, batch.actions, batch.rewards, batch.next_obs,
                       batch.discounts)
        if self.compiled and self.agent.device.type == "cuda":
            out = out.clone()  # CUDA-graph outputs are overwritten by the graph's next replay
        self.training.record(out[2:], updates_before)
        self.training.log_after_call(updates_before)
        return {"td_loss": out[0], "q_values": out[1]}

