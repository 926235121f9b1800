"""One line per epoch on stderr, for runs nobody watches through a progress bar.

A progress bar is drawn only into a terminal; in a log file, CI or a sweep a run would
otherwise be silent until its metrics appear (a CNN epoch on a CPU takes minutes)::

    epoch 3/10  train/loss 0.312  val/loss 0.298  val/acc 0.9123  lr 8.1e-4  12.4 s

The lr is the one the epoch started with (as in ``history.csv``); the time covers the
epoch's training and validation. ``make_trainer`` adds :class:`EpochProgressLog` when no bar
is drawn (``trainer.progress_log: auto``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import lightning as L

#: the logged values a line shows, in order, and how many decimals each gets
FIELDS = (("train/loss", 4), ("val/loss", 4), ("val/acc", 4))


def short_float(value: float) -> str:
    """``8.1e-4``: two significant digits, no zero-padded exponent (learning rates)."""
    mantissa, _, exponent = f"{value:.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent and value != 0 else "0"


def progress_line(
    epoch: int, max_epochs: int | None, metrics: Mapping[str, Any], lr: float, seconds: float
) -> str:
    """The line of one finished epoch (1 = the first); metrics that were not logged are left out."""
    parts = [f"epoch {epoch}/{max_epochs}" if max_epochs and max_epochs > 0 else f"epoch {epoch}"]
    for key, decimals in FIELDS:
        if key in metrics:
            parts.append(f"{key} {float(metrics[key]):.{decimals}f}")
    if not math.isnan(lr):
        parts.append(f"lr {short_float(lr)}")
    parts.append(f"{seconds:.1f} s")
    return "  ".join(parts)


class EpochProgressLog(L.Callback):
    """Prints :func:`progress_line` after every training epoch (and its validation), flushed,
    on the rank-0 process only.

    The module logs its train metrics in its own epoch-end hook, which Lightning runs after
    the callbacks' one, so an epoch's line is printed when the next epoch starts (or
    training ends): by then every value of the epoch is in ``trainer.callback_metrics``.

    Args:
        stream: where to write; ``None`` is ``sys.stderr`` at the time of writing.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._pending: tuple[int, float, float] | None = None  # (epoch, lr at start, start time)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        self._pending = (trainer.current_epoch + 1, float(lr), time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer)

    def _print(self, trainer: L.Trainer) -> None:
        if self._pending is None:
            return
        epoch, lr, start = self._pending
        self._pending = None
        if trainer.is_global_zero:
            line = progress_line(
                epoch, trainer.max_epochs, trainer.callback_metrics, lr, time.perf_counter() - start
            )
            print(line, file=self.stream or sys.stderr, flush=True)
