"""The episode sandbox: one container per episode, a persistent shell, and the agent's tools."""
