"""Multi-layer perceptron with a normalization before every hidden nonlinearity, and
the SELU self-normalizing variant (Klambauer et al. 2017, arXiv 1706.02515)."""
from __future__ import annotations

import math
from typing import Sequence

import torch.nn as nn

from normrl.networks.blocks import check_positive, make_activation, resolve_norm, width_multiplier
from normrl.normalization.registry import NormSpec


class MLP(nn.Sequential):
    """``Linear -> Norm -> Activation [-> Dropout]`` per hidden layer, then a plain
    ``Linear`` output layer (no norm, no activation).

    The modules are registered in data-flow order, so every hidden ``Linear`` is
    directly followed by its norm in ``model.modules()`` (the rule
    :class:`~normrl.normalization.NaPProjector` uses to find hidden layers). With
    ``norm=None``/``"none"`` no norm module is inserted (``Linear -> Activation``),
    which keeps the network a plain chain that :func:`~normrl.normalization.apply_nap`
    can convert. With a NaP norm (``norm="nap"``, any class with ``nap = True``) the
    hidden ``Linear`` layers have ``bias=False``; the output layer keeps its bias.

    ``activation="selu"`` builds the self-normalizing network of Klambauer et al. 2017
    (arXiv 1706.02515): SELU activations, LeCun-normal initialization of every Linear
    (weights ``N(0, 1/fan_in)``, biases 0), ``nn.AlphaDropout(dropout)`` when
    ``dropout > 0``, and no norm layers (combining it with a norm raises ValueError).
    Otherwise layers keep PyTorch's default initialization and ``dropout > 0`` adds
    ``nn.Dropout`` after each hidden activation.

    Args:
        in_dim: input features.
        out_dim: outputs; ``None`` builds the hidden layers only (``out_features`` is
            then the last hidden width).
        hidden: hidden widths [``(64, 64)``].
        norm: registered norm name, class, partial, or None [None].
        activation: one of ``relu``, ``leaky_relu``, ``elu``, ``gelu``, ``silu``,
            ``tanh``, ``selu``, ``crelu`` [``"relu"``]. ``crelu`` (concatenated ReLU)
            doubles each hidden layer's output features, so the next layer has twice
            the fan-in (equal width; :func:`normrl.plasticity.crelu_hidden_widths` gives
            the widths of equal parameter count).
        dropout: dropout probability after each hidden activation [0.0].
        norm_kwargs: extra keywords for every norm layer [None].

    Attributes:
        out_features: size of the output (``out_dim``, or the last hidden width).
        nap: whether the hidden layers were built in the NaP (bias-free) form.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None,
        hidden: Sequence[int] = (64, 64),
        norm: NormSpec = None,
        activation: str = "relu",
        dropout: float = 0.0,
        *,
        norm_kwargs: dict | None = None,
    ):
        check_positive("in_dim", in_dim)
        if out_dim is not None:
            check_positive("out_dim", out_dim)
        hidden = tuple(hidden)
        for h in hidden:
            check_positive("every hidden width", h)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        make_activation(activation)  # validates the name
        selu = activation.lower() == "selu"
        norm_ctor, nap = resolve_norm(norm)
        if selu and norm_ctor is not None:
            raise ValueError(f"activation='selu' is the self-normalizing MLP and uses no norm layers; got norm={norm!r} (use norm=None)")

        layers: list[nn.Module] = []
        width, mult = in_dim, width_multiplier(activation)
        for h in hidden:
            layers.append(nn.Linear(width, h, bias=not nap))
            if norm_ctor is not None:
                layers.append(norm_ctor(h, **(norm_kwargs or {})))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.AlphaDropout(dropout) if selu else nn.Dropout(dropout))
            width = h * mult
        if out_dim is not None:
            layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_features = out_dim if out_dim is not None else width
        self.nap = nap
        if selu:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    lecun_normal_(m)


def lecun_normal_(layer: nn.Linear) -> None:
    """LeCun-normal initialization: weights ``N(0, 1/fan_in)``, bias 0 (the SELU paper's)."""
    nn.init.normal_(layer.weight, mean=0.0, std=1.0 / math.sqrt(layer.in_features))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
