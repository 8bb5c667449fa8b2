"""L2-init / regenerative regularization (Kumar, Marklund & Van Roy 2023, "Maintaining
Plasticity in Continual Learning via Regenerative Regularization", arXiv 2308.11958).

Exact variant: the penalty ``0.5·lam·Σ_p ‖p − p₀‖²`` (the **squared** distance, as in
the paper's §3 and its code ``skumar9876/L2_Init`` ``agents.py``), where ``p₀`` is the
parameter's value when :meth:`L2Init.attach` ran (the initialization), over the
trainable parameters, norm-layer parameters excluded unless ``include_norm=True`` (the
code excludes LayerNorm). Parameters added later by a structural intervention (an
injected head) take their value at that moment as ``p₀``. Defaults: ``lam=1e-2`` ("a
single value, λ = 1e-2, achieves the best performance across problems", paper A.2.5),
``include_norm=False``.

Plasticine difference: ``plasticine/c51_atari_base.py``
(``plasticine_regenerative_regularization``) returns ``0.01·‖θ − θ₀‖₂``, the
*unsquared* distance over all parameters (LayerNorm included), whose gradient has a
constant magnitude λ wherever θ ≠ θ₀: a different regularizer, not Kumar's.

Memory: one copy of the regularized parameters, saved in ``state_dict`` (by parameter
name) so a resumed run pulls towards the original initialization.
"""
from __future__ import annotations

import torch

from normrl.plasticity.l2 import L2, regularized_parameters
from normrl.plasticity.registry import register_intervention

__all__ = ["L2Init"]


@register_intervention("l2_init", paper="Kumar, Marklund & Van Roy 2023, arXiv 2308.11958", description="penalty ½λ‖θ−θ₀‖² towards the initial parameters (squared; norm layers excluded)")
class L2Init(L2):
    """Regenerative regularization ``0.5·lam·Σ‖θ − θ₀‖²`` (see the module docstring):
    :class:`~normrl.plasticity.l2.L2` pulling towards ``θ₀`` instead of 0.

    Args:
        lam: λ [1e-2].
        include_norm: also regularize norm-layer parameters [False].
    """

    def __init__(self, lam: float = 1e-2, include_norm: bool = False) -> None:
        super().__init__(lam, include_norm)
        self._init: list[torch.Tensor] = []

    def attach(self, model, optimizer) -> None:
        self._params, self._init = [], []
        super().attach(model, optimizer)

    @torch.no_grad()
    def _refresh(self) -> None:
        known = {id(p): t for p, t in zip(self._params, self._init)}
        self._params = [p for _, p in regularized_parameters(self._require_attached(), self.include_norm)]
        self._init = [known[id(p)] if id(p) in known else p.detach().clone() for p in self._params]

    @property
    def initial_values(self) -> dict[str, torch.Tensor]:
        """``θ₀`` by current parameter name."""
        names = {id(p): n for n, p in self._require_attached().named_parameters()}
        return {names[id(p)]: t for p, t in zip(self._params, self._init)}

    def _anchors(self) -> list[torch.Tensor]:
        return self._init

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["init"] = {n: t.clone() for n, t in self.initial_values.items()}
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        saved = state["init"]
        current = self.initial_values
        if set(saved) != set(current):
            raise ValueError(
                f"l2_init state covers parameters {sorted(saved)}, this model's regularized parameters are {sorted(current)}"
            )
        for name, t in current.items():
            if saved[name].shape != t.shape:
                raise ValueError(f"l2_init state: {name} has shape {tuple(saved[name].shape)}, expected {tuple(t.shape)}")
            t.copy_(saved[name])

