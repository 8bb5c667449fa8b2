"""Online continual learning: buffer, methods, metrics, trainer, ResNet-18, CLI, AdaB²N in RL."""
