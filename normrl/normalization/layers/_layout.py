"""Layout helpers shared by the norm layers: validating ``layout``, checking an input
against a layer's layout and feature count, and applying a last-axis normalization to
channels-first (NCHW) tensors."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn


def check_layout(cls: type, layout: str) -> str:
    """Return ``layout`` if ``cls.layouts`` supports it, else raise ValueError naming
    the supported layouts."""
    if layout not in cls.layouts:
        raise ValueError(f"{cls.__name__} supports layout in {cls.layouts}, got {layout!r}")
    return layout


@torch.jit.unused
def check_input(layer: nn.Module, x: torch.Tensor) -> None:
    """Raise ValueError unless ``x`` fits ``layer.layout`` and ``layer.num_features``.

    ``layout="nc"`` takes ``(N, C)`` or ``(N, ..., C)``; ``layout="nchw"`` takes
    ``(N, C, H, W)``; ``C`` must equal ``num_features``. Only the shape is read (no
    tensor op, no device sync), so every forward calls it first, before any statistic
    is updated. The error names the layer, the expected and the received shape and,
    when the input fits the other layout, the ``layout=`` that would accept it.

    Call it as ``if not torch.jit.is_scripting(): check_input(self, x)``: TorchScript
    cannot compile the message, so scripted layers skip the check. Under
    ``torch.compile`` the check costs only shape guards; a rejected input raises this
    ValueError (with ``fullgraph=True`` Dynamo wraps it in its ``Unsupported`` error,
    whose text quotes this message).
    """
    shape = x.shape
    if layer.layout == "nc":
        if len(shape) >= 2 and shape[-1] == layer.num_features:
            return
    elif len(shape) == 4 and shape[1] == layer.num_features:
        return
    raise ValueError(input_error_message(layer, tuple(shape)))


_LAYOUT_WORDS = {"nc": "features-last input (N, ..., C)", "nchw": "channels-first images (N, C, H, W)"}


def expected_shape(layout: str, num_features: int) -> str:
    """The input shapes a layer with ``layout`` and ``num_features`` accepts, as text."""
    if layout == "nc":
        return f"(N, {num_features}) or (N, ..., {num_features})"
    return f"(N, {num_features}, H, W)"


def input_error_message(layer: nn.Module, shape: tuple[int, ...]) -> str:
    """The message of :func:`check_input` for an input of ``shape`` that ``layer`` rejects."""
    cls = type(layer)
    name = getattr(cls, "norm_name", cls.__name__)
    c, layout = layer.num_features, layer.layout
    text = f"norm {name!r} ({cls.__name__}) expects input of shape {expected_shape(layout, c)} for layout={layout!r}, got {shape}"
    if layout == "nc" and len(shape) == 4 and shape[1] == c:
        fix, other = f"this looks like a channels-first image batch (N, C, H, W) with C = {c}", "nchw"
    elif layout == "nc" and len(shape) == 3 and shape[1] == c:
        return f"{text}; this looks like channels-first input (N, C, L) with C = {c}: move the channel axis last (x.movedim(1, -1))"
    elif layout == "nchw" and len(shape) >= 2 and shape[-1] == c:
        fix, other = f"this looks like features-last input (N, ..., C) with C = {c}", "nc"
    else:
        return text
    layouts = getattr(cls, "layouts", (other,))
    if other not in layouts:
        takes = " or ".join(_LAYOUT_WORDS[l] for l in layouts)
        return f"{text}; {fix}, but {name!r} has no layout={other!r}: it takes only {takes}"
    return f"{text}; {fix}: build the layer with layout={other!r}, e.g. create_norm_layer({name!r}, {c}, layout={other!r})"


def over_channels(x: torch.Tensor, layout: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``fn`` (a normalization over the last axis) to the channel axis of ``x``.

    ``layout="nc"``: ``fn(x)``. ``layout="nchw"``: channels are moved last, ``fn`` is
    applied at every spatial position, and channels are moved back (the flax / NaP
    convention of LayerNorm over the channel axis of a conv feature map).
    """
    if layout == "nc":
        return fn(x)
    return fn(x.movedim(1, -1)).movedim(-1, 1)


def channel_shape(x: torch.Tensor, layout: str) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector against ``x`` in ``layout``."""
    if layout == "nc":
        return (-1,)
    return (-1,) + (1,) * (x.dim() - 2)
