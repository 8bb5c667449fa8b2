"""LiNeS: layer-increasing network scaling (Wang, Dimitriadis, Favero, Ortiz-Jimenez,
Fleuret & Frossard, ICLR 2025, "LiNeS: Post-training Layer Scaling Prevents Forgetting
and Enhances Model Merging", arXiv 2410.17146; code ``wang-kee/LiNeS``).

Exact variant: at the end of a task, the update each layer made during the task is
scaled by a factor that grows linearly with depth,

    θ_l ← θ_l,start + λ_l·(θ_l − θ_l,start),    λ_l = α + β·(l − 1)/(L − 1),

over the ``L`` weight layers (Linear/Conv) in registration (forward) order (the old,
new and frozen copies of an injected head are parallel branches sharing depths,
:func:`~normrl.plasticity.layers.layer_blocks`), so the
shallow layers stay close to what earlier tasks learned and the deepest layer keeps its
full update when ``α + β = 1``. ``θ_start`` is a snapshot taken at ``on_task_start``
(and at ``attach``). A layer's block holds its own parameters and those of the modules
registered after it up to the next weight layer (its norm layer); parameters registered
before the first weight layer are scaled by α, as the official code scales everything
outside its residual blocks by α (``src/eval/eval.py``, ``LiNeS_scaling``). With one
weight layer, λ₁ = α + β. Frozen parameters are not touched.

Defaults: ``alpha=0.5``, ``beta=1 − alpha``. The official single-task (forgetting)
setting uses exactly ``β = 1 − α`` and picks α on validation data from
``{0, 0.1, …, 1}``; no single α is published as the default, so 0.5 (the grid's middle)
is ours. ``from_task=1``: not applied at the end of task 0, where there is no earlier
task to keep (θ_start is the random initialization); set ``from_task=0`` to apply it
there too.

Not in Plasticine. Memory: one copy of the parameters (the snapshot), saved in
``state_dict``.
"""
from __future__ import annotations

from typing import Optional

import torch

from normrl.plasticity.base import STAGE_MERGE, Intervention
from normrl.plasticity.layers import layer_blocks
from normrl.plasticity.registry import register_intervention

__all__ = ["LiNeS", "lines_scales"]


def lines_scales(num_layers: int, alpha: float, beta: float) -> list[float]:
    """``[α + β·(l − 1)/(L − 1) for l = 1..L]`` (``[α + β]`` when ``L = 1``)."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if num_layers == 1:
        return [alpha + beta]
    return [alpha + beta * (l - 1) / (num_layers - 1) for l in range(1, num_layers + 1)]


@register_intervention("lines", paper="Wang et al., ICLR 2025, arXiv 2410.17146", description="at task end scale each layer's update since task start by α + β(l−1)/(L−1)")
class LiNeS(Intervention):
    """LiNeS at task end (module docstring).

    Args:
        alpha: λ of the first layer [0.5].
        beta: λ_L − λ_1 [None: 1 − alpha].
        from_task: apply at the end of tasks ``>= from_task`` [1].
    """

    order = STAGE_MERGE
    per_step = False

    def __init__(self, alpha: float = 0.5, beta: Optional[float] = None, from_task: int = 1) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.beta = 1.0 - self.alpha if beta is None else float(beta)
        if not isinstance(from_task, int) or isinstance(from_task, bool) or from_task < 0:
            raise ValueError(f"from_task must be a non-negative int, got {from_task!r}")
        self.from_task = from_task
        self._start: dict[int, torch.Tensor] = {}

    def attach(self, model, optimizer) -> None:
        super().attach(model, optimizer)
        self.snapshot()

    def on_structure_change(self) -> None:
        model = self._require_attached()
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad and id(p) not in self._start:
                    self._start[id(p)] = p.detach().clone()  # a new parameter's update starts now

    @torch.no_grad()
    def snapshot(self) -> None:
        """Record θ_start for every trainable parameter now."""
        self._start = {id(p): p.detach().clone() for p in self._require_attached().parameters() if p.requires_grad}

    def layer_scales(self) -> dict[str, float]:
        """λ_l by weight-layer name for the current structure."""
        blocks, _ = layer_blocks(self._require_attached())
        if not blocks:
            return {}
        scales = lines_scales(max(d for _, _, d in blocks), self.alpha, self.beta)
        return {name: scales[depth - 1] for name, _, depth in blocks}

    @torch.no_grad()
    def apply(self) -> None:
        """Scale every layer's update since the snapshot now."""
        blocks, outside = layer_blocks(self._require_attached())
        if not blocks:
            self.last_event = {}
            return
        scales = lines_scales(max(d for _, _, d in blocks), self.alpha, self.beta)
        groups = [(outside, self.alpha)] + [(params, scales[depth - 1]) for _, params, depth in blocks]
        for params, scale in groups:
            for p in params:
                start = self._start.get(id(p))
                if p.requires_grad and start is not None:
                    p.copy_(torch.lerp(start, p, scale))  # start + scale·(p − start)
        self.last_event = {f"scaled/{name}": scales[depth - 1] for name, _, depth in blocks}

    def on_task_start(self, task_id: int) -> None:
        self.last_event = {}
        self.snapshot()

    def on_task_end(self, task_id: int) -> None:
        self.last_event = {}
        if task_id >= self.from_task:
            self.apply()

    def state_dict(self) -> dict:
        state = super().state_dict()
        names = {id(p): n for n, p in self._require_attached().named_parameters()}
        state["start"] = {names[k]: t.clone() for k, t in self._start.items() if k in names}
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        params = dict(self._require_attached().named_parameters())
        unknown = sorted(set(state["start"]) - set(params))
        if unknown:
            raise ValueError(f"lines state has snapshots of parameters this model does not have: {unknown}")
        self._start = {id(params[n]): t.clone().to(params[n].device) for n, t in state["start"].items()}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, from_task={self.from_task}"
