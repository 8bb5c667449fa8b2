"""Parts shared by the PPO and DQN agents: buffers, GAE, episode logging, builders,
checkpoint helpers."""
