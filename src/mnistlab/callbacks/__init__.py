"""Training callbacks that are not artifacts: the epoch history, the progress log, the weight EMA.

Pictures and tables live in :mod:`mnistlab.artifacts`.
"""

from mnistlab.callbacks.history import EpochHistory
from mnistlab.callbacks.progress_log import EpochProgressLog

__all__ = ["EpochHistory", "EpochProgressLog"]
