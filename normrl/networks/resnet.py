"""The reduced ResNet-18 of online continual learning, with the norm from the registry.

Architecture (the "reduced ResNet-18" introduced with GEM, Lopez-Paz & Ranzato 2017,
arXiv 1706.08840, and used with ``nf=20`` by the ER, DER/DER++ (mammoth), ER-ACE and
AdaB²N code bases): a 3x3 stem conv with ``nf`` channels (stride 1, no max-pool), four
stages of two BasicBlocks with ``nf, 2nf, 4nf, 8nf`` channels (strides 1, 2, 2, 2),
global average pooling and one Linear classifier. A BasicBlock is
``conv3x3 -> norm -> relu -> conv3x3 -> norm``, plus a shortcut (``conv1x1 -> norm`` when
the shape changes, identity otherwise), then ``relu``. Every conv is bias-free.

Norms are built with ``layout="nchw"``. ``norm=None`` (or ``"none"``) inserts no norm;
a norm whose class sets ``weight_standardization = True`` (``"bcn"``) gets
weight-standardized convolutions (:class:`~normrl.normalization.ws_conv.WSConv2d`)
unless ``weight_standardization=False``. Modules are registered conv-then-norm, so
:class:`~normrl.normalization.NaPProjector`'s default rule selects every conv and never
the classifier (``norm="nap"``).
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from normrl.networks.blocks import check_positive, resolve_norm
from normrl.normalization.registry import NormSpec
from normrl.normalization.ws_conv import WSConv2d


class BasicBlock(nn.Module):
    """ResNet BasicBlock (two 3x3 convs) with a projection shortcut when needed."""

    def __init__(self, in_planes: int, planes: int, stride: int, make_norm, conv_cls):
        super().__init__()
        self.conv1 = conv_cls(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(planes)
        self.conv2 = conv_cls(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = make_norm(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(conv_cls(in_planes, planes, 1, stride=stride, bias=False), make_norm(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """Reduced ResNet-18 (``nf=20``: about 1.1M parameters for 10 classes).

    Args:
        num_classes: outputs of the classifier.
        norm: registered norm name, class, partial, or None ["batchnorm"].
        nf: width of the first stage [20].
        in_channels: image channels [3].
        norm_kwargs: extra keywords for every norm layer [None].
        weight_standardization: WSConv2d convs [None: True iff the norm asks for it].

    Input: float (N, in_channels, H, W); any H, W >= 8 (global average pooling).
    Attributes: ``features_dim`` (8·nf), ``classifier`` (the Linear head).
    """

    def __init__(self, num_classes: int, norm: NormSpec = "batchnorm", *, nf: int = 20, in_channels: int = 3, norm_kwargs: dict | None = None, weight_standardization: bool | None = None):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("nf", nf)
        check_positive("in_channels", in_channels)
        ctor, _ = resolve_norm(norm)
        kw = dict(norm_kwargs or {})
        if ctor is None:
            make_norm = lambda c: nn.Identity()  # noqa: E731
            wants_ws = False
        else:
            make_norm = lambda c: ctor(c, layout="nchw", **kw)  # noqa: E731
            target = ctor.func if isinstance(ctor, functools.partial) else ctor
            wants_ws = bool(getattr(target, "weight_standardization", False))
        ws = wants_ws if weight_standardization is None else bool(weight_standardization)
        conv_cls = WSConv2d if ws else nn.Conv2d
        self.conv1 = conv_cls(in_channels, nf, 3, stride=1, padding=1, bias=False)
        self.bn1 = make_norm(nf)
        blocks, planes = [], nf
        for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            for s in (stride, 1):
                blocks.append(BasicBlock(planes, nf * mult, s, make_norm, conv_cls))
                planes = nf * mult
        self.blocks = nn.Sequential(*blocks)
        self.features_dim = planes
        self.classifier = nn.Linear(planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, 8·nf) before the classifier."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.blocks(out)
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
