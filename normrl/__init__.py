"""normrl: normalization and plasticity research for continual and reinforcement learning."""
__version__ = "0.1.0"
