"""Lightning callbacks: what every run records and draws."""

from mnistlab.callbacks.history import EpochHistory

__all__ = ["EpochHistory"]
