"""DQN and PPO agents that accept any norm, optimizer wrapper and LR schedule."""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "PPO": "ppo.agent",
    "PPOConfig": "ppo.config",
    "DQN": "dqn.agent",
    "DQNConfig": "dqn.config",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
