"""Builders shared by the agents: generators, RNG-state capture for exact checkpoints,
optimizer-state layout, the plasticity monitor and AdaB²N task-id plumbing."""
from __future__ import annotations

import contextlib
from typing import Any

import gymnasium as gym
import torch
import torch.nn as nn


def discrete_actions(env) -> int:
    """Number of actions of ``env``'s ``Discrete`` single action space (else ValueError)."""
    space = env.single_action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"the agents need a Discrete action space, got {space}")
    return int(space.n)


def prefers_channels_last(module: nn.Module) -> bool:
    """True when ``module``'s first 2-D convolution keeps its weight channels-last
    (e.g. ``NatureCNN(channels_last=True)``), so image batches should be fed that way."""
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    return conv is not None and conv.weight.dim() == 4 and not conv.weight.is_contiguous() and conv.weight.is_contiguous(memory_format=torch.channels_last)


def align_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor the memory layout of its parameter.

    ``Optimizer.load_state_dict`` keeps the saved layout, so a checkpoint written with
    contiguous conv weights and loaded into a channels-last network (or the reverse)
    leaves Adam's moments laid out unlike the weights, which torch's fused Adam then
    updates wrongly (the loop implementation copes). Called after loading."""
    for param, state in optimizer.state.items():
        if not isinstance(param, torch.Tensor):
            continue
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Run a block (network construction) with torch's global RNG seeded by ``seed``,
    restoring the caller's RNG state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def global_rng_state() -> dict:
    """torch's global CPU (and CUDA) RNG states, for checkpoints."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict) -> None:
    """Restore :func:`global_rng_state`'s output."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_monitor(model: nn.Module, every: int, writer) -> Any:
    """A ``normrl.metrics.PlasticityMonitor`` logging every ``every`` updates to
    ``writer``, or None when ``every`` is 0, there is no writer, or the metrics package
    is not available."""
    if every <= 0 or writer is None:
        return None
    try:
        from normrl.metrics import PlasticityMonitor
    except (ImportError, AttributeError):
        return None
    return PlasticityMonitor(model, every=every, writer=writer)


def task_id_setters(model: nn.Module) -> list:
    """Bound ``set_batch_task_ids(task_ids)`` methods of ``model``'s modules (AdaB²N
    needs the task id of every sample of a training batch); called by the agents with
    the minibatch's ``(B,)`` int64 task ids before each training forward."""
    return [m.set_batch_task_ids for m in model.modules() if callable(getattr(m, "set_batch_task_ids", None))]


def adab2n_aux_loss(model: nn.Module) -> torch.Tensor:
    """Σ over ``model``'s AdaB²N layers of their last training ``aux_loss``
    (``normrl.normalization.layers.adab2n.adab2n_aux_loss``)."""
    from normrl.normalization.layers.adab2n import adab2n_aux_loss as aux

    return aux(model)
