"""The divergence guard: non-finite losses, gradient norms, parameters and norm
statistics caught where they start, without a host synchronization per update.

Every update, :meth:`DivergenceGuard.before_step` writes ``loss + grad_norm`` into the
next slot of a preallocated device buffer (one small device op, no host read; the sum is
non-finite exactly when one of them is). The gradient norm is the one gradient clipping
returns (PPO); without clipping (DQN's default) the loss goes into the slot and one
fused call (torch's AMP non-finite check, as ``GradScaler`` uses) flags NaN/inf
gradients in a second slot. At the agent's logging point — once per PPO rollout, every
``log_interval`` env steps and at the end of ``learn`` for DQN —
:meth:`DivergenceGuard.check` reads the slots and the finiteness of every floating
parameter and buffer (running statistics included) of the agent's networks (one fused
``_foreach_norm`` call) to the host in one transfer. When something is non-finite it
raises :class:`~normrl.utils.errors.TrainingDiverged` naming the env step and update of
the first non-finite loss / gradient (or, if those stayed finite, the check's last
update), and the first non-finite parameter or buffer.

``on_divergence="skip-update"`` skips the optimizer step of every update whose loss or
gradient norm is non-finite, and counts them (``skipped_updates``). With torch's fused
Adam/AdamW (the agents' default) the skip is decided on the device, through the
optimizer's ``found_inf`` input (the mechanism ``torch.amp.GradScaler`` uses), so it
needs no host read either; any other optimizer reads the flag on the host before each
step (free on CPU, one synchronization per update on CUDA). Parameters or statistics
that go non-finite anyway (e.g. a norm layer's running statistics from a non-finite
forward pass) still stop the run.

Compiled updates (``compile=True``) fold the same check into their graph: each step's
``loss + gradient norm`` (exact gradient finiteness without clipping) is an output of
the compiled call, copied into the slots by :meth:`DivergenceGuard.record`; in
``"skip-update"`` mode the graph itself keeps the parameters, Adam's moments and its
step count of a non-finite step (``torch.where`` on the flat vectors), as fused Adam's
``found_inf`` does in eager mode.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import torch
import torch.nn as nn

from normrl.normalization.projected_optimizer import unwrap_optimizer
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


_AMP_CHECK_WORKS: dict[str, bool] = {}


def _flag_nonfinite(grads: list[torch.Tensor], flag: torch.Tensor, one: torch.Tensor) -> None:
    """Set the one-element ``flag`` to nonzero when any of ``grads`` holds a NaN or inf,
    on the device and in one fused call: torch's AMP check
    (``_amp_foreach_non_finite_check_and_unscale_``, what ``GradScaler`` uses; the
    gradients are multiplied by exactly 1). Where that op is missing (older torch on the
    CPU), ``0 * gradient norm`` (NaN iff non-finite) instead."""
    kind = grads[0].device.type
    if _AMP_CHECK_WORKS.get(kind, True):
        try:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, flag, one)
            _AMP_CHECK_WORKS[kind] = True
            return
        except (RuntimeError, NotImplementedError):
            _AMP_CHECK_WORKS[kind] = False
    torch.mul(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))), 0.0, out=flag[0])


def state_tensors(agent) -> list[torch.Tensor]:
    """Every non-empty floating parameter and buffer of ``agent.networks()`` (running
    statistics included), in :func:`named_state_tensors` order."""
    return [t for net in agent.networks() for t in itertools.chain(net.parameters(), net.buffers())
            if t.is_floating_point() and t.numel()]


def named_state_tensors(agent) -> list[tuple[str, torch.Tensor]]:
    """:func:`state_tensors` named ``<agent attribute>.<name>`` (e.g. ``q_network.0.weight``)."""
    attrs = {id(v): k for k, v in vars(agent).items() if isinstance(v, nn.Module) and not k.startswith("_")}
    out = []
    for i, net in enumerate(agent.networks()):
        prefix = attrs.get(id(net), f"networks[{i}]")
        for name, t in itertools.chain(net.named_parameters(), net.named_buffers()):
            if t.is_floating_point() and t.numel():
                out.append((f"{prefix}.{name}", t))
    return out


def _maybe_finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One bool per tensor, on the device: its L2 norm (one fused ``_foreach_norm`` call,
    the cheapest reduction torch has for this) is finite. NaN and inf always make the
    norm non-finite; a False can also be a finite tensor whose norm overflows (values
    beyond ~1e19), which :func:`_first_nonfinite_of` rules out exactly."""
    with torch.no_grad():
        return torch.isfinite(torch.stack(torch._foreach_norm(tensors)))


def _first_nonfinite_of(named: list[tuple[str, torch.Tensor]], maybe_finite: list) -> str | None:
    """The first of ``named`` whose flag is False and that really holds a NaN or inf
    (an exact elementwise check of those few tensors only)."""
    return next((name for (name, t), ok in zip(named, maybe_finite) if not ok and not bool(torch.isfinite(t).all())),
                None)


def first_nonfinite(agent) -> str | None:
    """Name of the first non-finite parameter or buffer of ``agent`` (one host read when
    all are finite), or None."""
    tensors = state_tensors(agent)
    if not tensors:
        return None
    flags = _maybe_finite(tensors).tolist()
    return None if all(flags) else _first_nonfinite_of(named_state_tensors(agent), flags)


class DivergenceGuard:
    """Watches one agent's updates for non-finite values (see the module docstring).

    Args:
        mode: ``"stop"`` (raise at the next check) or ``"skip-update"``.
        device: the device of the trained network.
    """

    def __init__(self, mode: str, device: torch.device):
        check_on_divergence(mode)
        self.mode = mode
        # per update since the last check: loss (+ the clipped gradient norm), and, for
        # unclipped updates, a gradient flag (0: finite; 1 or NaN: a NaN/inf gradient)
        self._values = torch.zeros(256, device=device)
        self._grad_flags = torch.zeros(256, device=device)
        self._one = torch.ones(1, device=device)
        self._updates: list[tuple[int, int]] = []  # (update, env step) of the same updates
        self.skipped_updates = 0

    def reset(self) -> None:
        """Forget the updates since the last check (after a checkpoint is loaded)."""
        self._grad_flags[: len(self._updates)].zero_()
        self._updates.clear()

    def _room(self, count: int) -> None:
        """Grow the slot buffers until ``count`` more updates fit."""
        while len(self._updates) + count > self._values.numel():
            self._values = torch.cat([self._values, torch.zeros_like(self._values)])
            self._grad_flags = torch.cat([self._grad_flags, torch.zeros_like(self._grad_flags)])

    def record(self, values: torch.Tensor, first_update: int, env_step: int) -> None:
        """Record the updates ``first_update, first_update + 1, ...`` taken at ``env_step``
        by a compiled update (``compile=True``), which computes each one's check value
        itself (finite iff its loss and gradients are; see
        :meth:`~normrl.agents.common.compiled_training.FunctionalTraining.step`) and, in
        ``"skip-update"`` mode, has already skipped the non-finite ones: a device copy of
        ``values`` into the slots, no host read."""
        count = values.numel()
        self._room(count)
        i = len(self._updates)
        self._values[i : i + count].copy_(values.detach().reshape(-1))
        self._updates.extend((first_update + j, env_step) for j in range(count))

    def before_step(self, loss: torch.Tensor, grad_norm: torch.Tensor | None, model: nn.Module, optimizer,
                    update: int, env_step: int) -> bool:
        """Record update number ``update`` (1-based) taken at ``env_step``; call after
        ``backward`` (and clipping, whose returned norm is ``grad_norm``; None: the
        gradients of ``optimizer``'s parameters are checked here). Returns whether to
        call ``optimizer.step()``."""
        self._room(1)
        i = len(self._updates)
        if grad_norm is not None:
            # one kernel into a preallocated slot: non-finite iff the loss or the gradient norm is
            torch.add(loss.detach(), grad_norm, out=self._values[i])
        else:
            self._values[i].copy_(loss.detach())
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            if grads:
                _flag_nonfinite(grads, self._grad_flags[i : i + 1], self._one)
        self._updates.append((update, env_step))
        if self.mode == "stop":
            return True
        ok = torch.isfinite(self._values[i]).logical_and_(self._grad_flags[i] == 0)
        inner = unwrap_optimizer(optimizer)
        if getattr(inner, "_step_supports_amp_scaling", False):  # fused Adam/AdamW: skipped on the device
            inner.found_inf = ok.logical_not().float()
            return True
        return bool(ok)  # other optimizers: one host read per update

    def check(self, agent, writer: Any = None) -> None:
        """Raise :class:`TrainingDiverged` if a non-finite loss or gradient norm occurred
        since the last check (``"stop"`` mode) or any parameter/buffer of ``agent`` is
        non-finite now (both modes); one host read."""
        n = len(self._updates)
        tensors = state_tensors(agent)
        finite = torch.isfinite(self._values[:n]).logical_and_(self._grad_flags[:n] == 0)
        self._grad_flags[:n].zero_()
        parts = [finite.logical_not().sum().reshape(1),
                 # index of the first non-finite update (argmin finds the first 0)
                 torch.argmin(finite.int()).reshape(1) if n else finite.new_zeros(1, dtype=torch.long)]
        if tensors:
            parts.append(_maybe_finite(tensors).long())
        n_bad, first_bad, *params_ok = torch.cat([p.to(self._values.device, torch.long) for p in parts]).tolist()
        ok = n_bad == 0
        bad_param = None if all(params_ok) else _first_nonfinite_of(named_state_tensors(agent), params_ok)
        if self.mode == "skip-update":
            self.skipped_updates += n_bad
            if writer is not None:
                writer.add_scalar("charts/skipped_updates", self.skipped_updates, agent.num_steps)
            ok = True  # non-finite updates were skipped: only the parameters can stop the run
        if ok and bad_param is None:
            self._updates.clear()
            return
        if not ok:
            update, env_step = self._updates[first_bad]
            cause = "loss or gradient norm"
        else:
            update, env_step = self._updates[-1] if self._updates else (agent.num_updates, agent.num_steps)
            cause = "parameters"
        self._updates.clear()
        facts = {"env_step": int(env_step), "update": int(update), "cause": cause, "parameter": bad_param}
        raise TrainingDiverged(
            f"training diverged at env step {env_step} (update {update}): non-finite {cause}; first non-finite "
            f"parameter: {bad_param or 'none'}", facts)
