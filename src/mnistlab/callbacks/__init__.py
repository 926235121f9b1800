"""Training callbacks that are not artifacts: the epoch history and the weight EMA.

Pictures and tables live in :mod:`mnistlab.artifacts`.
"""

from mnistlab.callbacks.history import EpochHistory

__all__ = ["EpochHistory"]
