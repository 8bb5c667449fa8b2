"""The divergence guard: non-finite losses, gradient norms, parameters and norm
statistics caught where they start, without a host synchronization per update.

Every update, :meth:`DivergenceGuard.before_step` folds ``isfinite(loss + grad_norm)``
into a device-side flag (``&=``) and counts the updates done while the flag still held
(four small device ops, no host read). At the agent's logging point — once per PPO
rollout, every ``log_interval`` env steps and at the end of ``learn`` for DQN —
:meth:`DivergenceGuard.check` adds the finiteness of every floating parameter and
buffer (running statistics included) of the agent's networks and reads it all to the
host in one transfer. When something is non-finite it raises
:class:`~normrl.utils.errors.TrainingDiverged` naming the env step and update of the
first non-finite loss / gradient norm (or, if those stayed finite, the check's last
update), and the first non-finite parameter or buffer.

``on_divergence="skip-update"`` skips the optimizer step of every update whose loss or
gradient norm is non-finite, and counts them (``skipped_updates``). With torch's fused
Adam/AdamW (the agents' default) the skip is decided on the device, through the
optimizer's ``found_inf`` input (the mechanism ``torch.amp.GradScaler`` uses), so it
needs no host read either; any other optimizer reads the flag on the host before each
step (free on CPU, one synchronization per update on CUDA). Parameters or statistics
that go non-finite anyway (e.g. a norm layer's running statistics from a non-finite
forward pass) still stop the run.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn as nn

from normrl.utils.errors import TrainingDiverged

#: Values of the configs' ``on_divergence`` field.
ON_DIVERGENCE = ("stop", "skip-update")


def check_on_divergence(value: str) -> None:
    """ValueError unless ``value`` is one of :data:`ON_DIVERGENCE`."""
    if value not in ON_DIVERGENCE:
        raise ValueError(f"on_divergence must be one of {', '.join(ON_DIVERGENCE)}, got {value!r}")


def check_finite_floats(config) -> None:
    """ValueError naming the first float field of the dataclass ``config`` that is NaN
    or infinite (such a hyperparameter makes the first update diverge)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value!r}")


def _inner_optimizer(optimizer):
    from normrl.normalization.projected_optimizer import ProjectedOptimizer

    return optimizer.optimizer if isinstance(optimizer, ProjectedOptimizer) else optimizer


def named_state_tensors(agent) -> list[tuple[str, torch.Tensor]]:
    """Every floating parameter and buffer of ``agent.networks()``, named
    ``<agent attribute>.<name>`` (e.g. ``q_network.0.weight``)."""
    attrs = {id(v): k for k, v in vars(agent).items() if isinstance(v, nn.Module) and not k.startswith("_")}
    out = []
    for i, net in enumerate(agent.networks()):
        prefix = attrs.get(id(net), f"networks[{i}]")
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if t.is_floating_point():
                out.append((f"{prefix}.{name}", t))
    return out


def first_nonfinite(agent) -> str | None:
    """Name of the first non-finite parameter or buffer of ``agent`` (one host read), or None."""
    named = named_state_tensors(agent)
    if not named:
        return None
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist()
    return next((name for (name, _), ok in zip(named, finite) if not ok), None)


class DivergenceGuard:
    """Watches one agent's updates for non-finite values (see the module docstring).

    Args:
        mode: ``"stop"`` (raise at the next check) or ``"skip-update"``.
        device: the device of the trained network.
    """

    def __init__(self, mode: str, device: torch.device):
        check_on_divergence(mode)
        self.mode = mode
        self._ok = torch.ones((), dtype=torch.bool, device=device)
        self._good = torch.zeros((), dtype=torch.int64, device=device)
        self._skipped = torch.zeros((), dtype=torch.int64, device=device)
        self._updates: list[tuple[int, int]] = []  # (update, env step) since the last check
        self.skipped_updates = 0

    def reset(self) -> None:
        """Forget the updates since the last check (after a checkpoint is loaded)."""
        self._ok.fill_(True)
        self._good.zero_()
        self._skipped.zero_()
        self._updates.clear()

    def before_step(self, loss: torch.Tensor, grad_norm: torch.Tensor | None, model: nn.Module, optimizer,
                    update: int, env_step: int) -> bool:
        """Record update number ``update`` (1-based) taken at ``env_step``; call after
        ``backward`` (and clipping, whose returned norm is ``grad_norm``; None: computed
        here). Returns whether to call ``optimizer.step()``."""
        if grad_norm is None:
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else loss.new_zeros(())
        step_ok = torch.isfinite(loss.detach() + grad_norm)
        self._updates.append((update, env_step))
        if self.mode == "stop":
            self._ok.logical_and_(step_ok)
            self._good.add_(self._ok)
            return True
        bad = step_ok.logical_not()
        self._skipped.add_(bad)
        inner = _inner_optimizer(optimizer)
        if getattr(inner, "_step_supports_amp_scaling", False):  # fused Adam/AdamW: skipped on the device
            inner.found_inf = bad.float()
            return True
        return bool(step_ok)  # other optimizers: one host read per update

    def check(self, agent, writer: Any = None) -> None:
        """Raise :class:`TrainingDiverged` if a non-finite value occurred since the last
        check or any parameter/buffer of ``agent`` is non-finite now (one host read)."""
        named = named_state_tensors(agent)
        flags = [self._ok.long(), self._good, self._skipped]
        flags += [torch.isfinite(t).all().long() for _, t in named]
        ok, good, skipped, *finite = torch.stack([f.to(self._good.device) for f in flags]).tolist()
        self._skipped.zero_()
        self.skipped_updates += skipped
        if writer is not None and self.mode == "skip-update":
            writer.add_scalar("charts/skipped_updates", self.skipped_updates, agent.num_steps)
        bad_param = next((name for (name, _), f in zip(named, finite) if not f), None)
        if ok and bad_param is None:
            self._updates.clear()
            self._good.zero_()
            return
        if not ok:
            update, env_step = self._updates[good]
            cause = "loss or gradient norm"
        else:
            update, env_step = self._updates[-1] if self._updates else (agent.num_updates, agent.num_steps)
            cause = "parameters"
        facts = {"env_step": int(env_step), "update": int(update), "cause": cause, "parameter": bad_param}
        raise TrainingDiverged(
            f"training diverged at env step {env_step} (update {update}): non-finite {cause}; first non-finite "
            f"parameter: {bad_param or 'none'}", facts)
