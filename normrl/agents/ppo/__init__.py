"""Proximal Policy Optimization: config, networks, loss, agent."""
