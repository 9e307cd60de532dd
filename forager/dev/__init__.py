"""Development helpers: things tests and demos need that are not part of collecting trajectories."""
