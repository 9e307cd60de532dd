"""forager: agentic software-engineering trajectories from executable repository images."""

__version__ = "0.1.0"
