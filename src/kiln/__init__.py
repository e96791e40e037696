"""Kiln: a local-first machine-learning platform."""

__version__ = "0.1.0"
