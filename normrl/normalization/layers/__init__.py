"""Normalization layers. Each module registers its layers with ``@register_norm``;
the registry imports every module of this package on first use."""
