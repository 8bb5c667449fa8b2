"""Builders shared by the agents: networks for an observation space, the optimizer
(wrapped for NaP), generators and RNG-state capture for exact checkpoints."""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from normrl.normalization.registry import get_norm_layer


class ObsToFloat(nn.Module):
    """Cast observations to float32; divide by ``scale`` (255 for uint8 frames).

    ``channels_last``: lay 4-D image batches out channels-last (for a channels-last
    :class:`~normrl.networks.NatureCNN`) before the cast, where the copy moves one byte
    per value instead of four."""

    def __init__(self, scale: float = 1.0, channels_last: bool = False):
        super().__init__()
        self.scale = float(scale)
        self.channels_last = channels_last

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.channels_last and obs.dim() == 4:
            obs = obs.contiguous(memory_format=torch.channels_last)
        x = obs.float()
        if self.scale == 1.0:
            return x
        return x.div_(self.scale) if x is not obs else x / self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}" + (", channels_last=True" if self.channels_last else "")


def obs_scale(space: gym.spaces.Box) -> float:
    """255 for uint8 image spaces bounded by 255 (Atari frames), else 1."""
    if space.dtype == np.uint8 and np.all(space.high == 255):
        return 255.0
    return 1.0


def discrete_actions(env) -> int:
    """Number of actions of ``env``'s ``Discrete`` single action space (else ValueError)."""
    space = env.single_action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"the agents need a Discrete action space, got {space}")
    return int(space.n)


def build_network(obs_space: gym.Space, out_dim: int, norm: Any = "none", hidden: tuple[int, ...] = (64, 64), activation: str = "relu") -> nn.Module:
    """A network from observations to ``out_dim`` outputs, chosen by observation shape.

    * ``(D,)`` vectors: ``normrl.networks.MLP(D, out_dim, hidden, norm, activation)``;
    * ``(C, 10, 10)`` MinAtar grids: ``MinAtarCNN(C, out_dim, norm)`` (``hidden`` unused);
    * ``(C, H, W)`` other images (Atari 84x84): ``NatureCNN(C, out_dim, norm,
      channels_last=True)``.

    Wrapped as ``nn.Sequential(ObsToFloat(scale), net)`` so any observation dtype
    (bool, uint8, float) is accepted.
    """
    from normrl import networks

    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(f"the agents need a Box observation space, got {obs_space}")
    shape = tuple(obs_space.shape)
    if len(shape) == 1:
        net = networks.MLP(shape[0], out_dim, hidden=tuple(hidden), norm=norm, activation=activation)
    elif len(shape) == 3 and shape[1:] == (10, 10):
        net = networks.MinAtarCNN(shape[0], out_dim, norm=norm)
    elif len(shape) == 3:
        net = networks.NatureCNN(shape[0], out_dim, norm=norm, channels_last=True)
        return nn.Sequential(ObsToFloat(obs_scale(obs_space), channels_last=True), net)
    else:
        raise ValueError(f"no default network for observation shape {shape}; pass network=")
    return nn.Sequential(ObsToFloat(obs_scale(obs_space)), net)


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


def is_nap_norm(norm: Any) -> bool:
    """True for norms that build the Normalize-and-Project form (``norm="nap"``)."""
    if norm is None or (isinstance(norm, str) and norm.lower() == "none"):
        return False
    return bool(getattr(get_norm_layer(norm), "nap", False))


def build_optimizer(
    module: nn.Module,
    norm: Any,
    optimizer_class: Callable[..., torch.optim.Optimizer],
    optimizer_kwargs: dict,
    nap_every: int = 1,
) -> torch.optim.Optimizer:
    """``optimizer_class(module.parameters(), **optimizer_kwargs)``; with a NaP norm,
    wrapped in ``ProjectedOptimizer(opt, NaPProjector(module, output="free"),
    every=nap_every)`` so hidden weights return to their initial norms after every step
    (arXiv 2407.01800). The heads stay free: Q-values and state values are regression
    outputs whose range a projected head would cap (docs/results/nap_output_layer.md)."""
    opt = optimizer_class(module.parameters(), **optimizer_kwargs)
    if is_nap_norm(norm) and not hasattr(opt, "projector"):
        from normrl.normalization import NaPProjector, ProjectedOptimizer

        opt = ProjectedOptimizer(opt, NaPProjector(module, output="free"), every=nap_every)
    return opt


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
