"""Deep Q-Networks (Double DQN, n-step): config, networks, loss, agent."""
