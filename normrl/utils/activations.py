"""The module types normrl counts as hidden nonlinearities.

One tuple serves every rule that looks for them: Normalize-and-Project's insertion of a
norm before each nonlinearity (:func:`normrl.normalization.apply_nap`), the plasticity
monitor's choice of hidden layers (:func:`normrl.metrics.hidden_activation_layers`) and
the plasticity interventions' unit tracing.
"""
from __future__ import annotations

import torch.nn as nn

#: Activation module types treated as hidden nonlinearities.
ACTIVATION_TYPES: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU,
    nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish,
    nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid,
    nn.Softshrink, nn.Hardshrink, nn.Threshold,
)
