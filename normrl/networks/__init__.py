"""Networks that take ``norm=``: any registered norm name, class, partial, or ``"nap"``."""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "MLP": "mlp",
    "ResidualMLP": "residual_mlp",
    "NatureCNN": "nature_cnn",
    "MinAtarCNN": "minatar_cnn",
    "ResNet18": "resnet",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
