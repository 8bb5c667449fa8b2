"""Residual MLP with the norm placements of the LayerNorm family.

Every block computes a residual update ``F(x) = Linear(act(Linear(x)))`` (width →
width → width) and combines it with its input according to its placement:

* ``pre``  (Pre-LN, Xiong et al. 2020, arXiv 2002.04745): ``y = x + F(Norm(x))``;
* ``post`` (Post-LN, the original Transformer, arXiv 1706.03762): ``y = Norm(x + F(x))``;
* ``peri`` (Peri-LN, Kim et al. 2025, arXiv 2502.02732):
  ``y = x + Norm_out(F(Norm_in(x)))``, two norms per block;
* ``lns``  (LayerNorm Scaling, "The Curse of Depth in LLMs", Sun et al. 2025,
  arXiv 2502.05795): Pre-LN whose norm output in block ``l`` (1-based) is multiplied
  by ``1/sqrt(l)``: ``y = x + F(Norm(x) / sqrt(l))``;
* ``mix``  (Mix-LN, Li et al. 2024, arXiv 2412.13795): Post-LN for the first
  ``floor(alpha * depth)`` blocks, Pre-LN for the others, ``alpha=0.25``.

The network is ``Linear(in_dim, width) -> blocks -> final_norm -> Linear(width,
out_dim)``. ``final_norm`` is a norm for every placement whose last block leaves an
unnormalized stream (``pre``, ``lns``, ``peri``, ``mix``; for ``lns`` it is
unscaled) and the identity for ``post``. The input projection and the output layer
have no norm of their own.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from normrl.networks.blocks import check_positive, make_activation, width_multiplier
from normrl.normalization.registry import NormSpec, get_norm_layer

PLACEMENTS = ("pre", "post", "mix", "peri", "lns")
BLOCK_PLACEMENTS = ("pre", "post", "peri")


class ResidualBlock(nn.Module):
    """One residual block ``y = x + F(x)`` with a norm placement.

    Args:
        width: stream width.
        norm: norm constructor ``f(width) -> module``.
        placement: ``"pre"``, ``"post"`` or ``"peri"``.
        activation: activation name inside ``F``.
        scale: multiplier of the (input) norm's output, used by LayerNorm Scaling
            [1.0]; only valid with ``"pre"``.

    Attributes:
        placement, scale; ``norm`` (``norm_in`` and ``norm_out`` for ``"peri"``).
    """

    def __init__(self, width: int, norm, placement: str, activation: str = "relu", scale: float = 1.0):
        super().__init__()
        if placement not in BLOCK_PLACEMENTS:
            raise ValueError(f"block placement must be one of {BLOCK_PLACEMENTS}, got {placement!r}")
        if scale != 1.0 and placement != "pre":
            raise ValueError("a norm output scale is only defined for pre-LN blocks")
        self.placement = placement
        self.scale = float(scale)
        if placement == "peri":
            self.norm_in = norm(width)
        elif placement == "pre":
            self.norm = norm(width)
        self.fc1 = nn.Linear(width, width)
        self.act = make_activation(activation)
        self.fc2 = nn.Linear(width * width_multiplier(activation), width)
        if placement == "peri":
            self.norm_out = norm(width)
        elif placement == "post":
            self.norm = norm(width)

    def residual(self, h: torch.Tensor) -> torch.Tensor:
        """``F(h) = fc2(act(fc1(h)))``."""
        return self.fc2(self.act(self.fc1(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.placement == "pre":
            h = self.norm(x)
            if self.scale != 1.0:
                h = h * self.scale
            return x + self.residual(h)
        if self.placement == "post":
            return self.norm(x + self.residual(x))
        return x + self.norm_out(self.residual(self.norm_in(x)))

    def extra_repr(self) -> str:
        return f"placement={self.placement!r}" + (f", scale={self.scale:.6g}" if self.scale != 1.0 else "")


def block_placements(placement: str, depth: int, alpha: float = 0.25) -> list[str]:
    """Per-block placement (``pre``/``post``/``peri``) of a ``depth``-block network.

    ``mix``: ``post`` for the first ``floor(alpha * depth)`` blocks, ``pre`` after;
    ``lns`` blocks are ``pre`` (their scale is separate).
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    if placement == "mix":
        n_post = math.floor(alpha * depth)
        return ["post"] * n_post + ["pre"] * (depth - n_post)
    return [{"lns": "pre"}.get(placement, placement)] * depth


class ResidualMLP(nn.Module):
    """Residual MLP: input Linear, ``depth`` residual blocks of ``width``, final norm,
    output Linear (see the module docstring for the placements).

    Args:
        in_dim: input features.
        out_dim: outputs; ``None`` returns the final normalized stream (``width``).
        width: width of the residual stream and of ``F``'s hidden layer.
        depth: number of residual blocks ``L`` (>= 1).
        norm: registered norm name, class, partial, or None [``"layernorm"``].
        placement: ``"pre"`` [default], ``"post"``, ``"mix"``, ``"peri"`` or ``"lns"``.
        activation: activation inside each block [``"relu"``].
        alpha: Mix-LN's fraction of Post-LN blocks [0.25]; ignored otherwise.
        norm_kwargs: extra keywords for every norm layer [None].

    Attributes:
        blocks: ``nn.ModuleList`` of :class:`ResidualBlock`.
        placements: per-block placement list (``"pre"``/``"post"``/``"peri"``).
        scales: per-block norm-output scale (``1/sqrt(l)`` for ``lns``, else 1).
        final_norm: norm after the last block (identity for ``post``).

    Note for Normalize-and-Project: in a residual network a Linear registered just
    before a norm need not feed it, so build the projector with an explicit
    ``include=`` list (see :class:`~normrl.normalization.NaPProjector`).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None,
        width: int,
        depth: int,
        norm: NormSpec = "layernorm",
        placement: str = "pre",
        activation: str = "relu",
        *,
        alpha: float = 0.25,
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_positive("in_dim", in_dim)
        if out_dim is not None:
            check_positive("out_dim", out_dim)
        check_positive("width", width)
        check_positive("depth", depth)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        make_activation(activation)
        self.placement = placement
        self.alpha = float(alpha)
        self.placements = block_placements(placement, depth, alpha)
        self.scales = [1.0 / math.sqrt(l) if placement == "lns" else 1.0 for l in range(1, depth + 1)]
        ctor = get_norm_layer(norm)
        kw = dict(norm_kwargs or {})

        def make_norm(n: int) -> nn.Module:
            return ctor(n, **kw)

        self.input = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList(
            ResidualBlock(width, make_norm, p, activation, s) for p, s in zip(self.placements, self.scales)
        )
        self.final_norm = nn.Identity() if placement == "post" else make_norm(width)
        self.head = nn.Linear(width, out_dim) if out_dim is not None else None
        self.out_features = out_dim if out_dim is not None else width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x)
        for block in self.blocks:
            h = block(h)
        h = self.final_norm(h)
        return h if self.head is None else self.head(h)
