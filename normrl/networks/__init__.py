"""Networks that take ``norm=``: any registered norm name, class, partial, or ``"nap"``;
:func:`build_network` picks one for an observation space."""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "MLP": "mlp",
    "ResidualMLP": "residual_mlp",
    "NatureCNN": "nature_cnn",
    "MinAtarCNN": "minatar_cnn",
    "ResNet18": "resnet",
    "InputCast": "input_cast",
    "build_network": "build",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
