"""The Lightning Trainer of conf/trainer: Lightning's own, with a progress bar that costs little.

Lightning's default progress bar redraws after every batch; for MNIST-sized models that
redraw costs about as much as a whole training step (measured with ``python -m
mnistlab.bench``). Here the bar is drawn every ``progress_bar_refresh_rate`` batches, and
by default only when someone can see it (stderr is a terminal), not into log files.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ProgressBar, TQDMProgressBar

from mnistlab.errors import ConfigError


def make_trainer(
    enable_progress_bar: bool | str = "auto",
    progress_bar_refresh_rate: int = 20,
    callbacks: Sequence[Callback] | Callback | None = None,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """``lightning.Trainer(**trainer_kwargs)`` with the progress bar set up as described above.

    Args:
        enable_progress_bar: ``true``, ``false`` or ``auto`` (on when stderr is a terminal).
        progress_bar_refresh_rate: redraw the bar every this many batches.
        callbacks: the run's callbacks; a progress bar among them is kept as given.
    """
    if enable_progress_bar not in (True, False, "auto"):
        raise ConfigError(
            f"trainer.enable_progress_bar={enable_progress_bar!r} must be true, false or auto"
        )
    if (
        isinstance(progress_bar_refresh_rate, bool)
        or not isinstance(progress_bar_refresh_rate, int)
        or progress_bar_refresh_rate < 1
    ):
        raise ConfigError(
            f"trainer.progress_bar_refresh_rate={progress_bar_refresh_rate!r} must be a whole number >= 1"
        )
    callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or [])
    show = sys.stderr.isatty() if enable_progress_bar == "auto" else bool(enable_progress_bar)
    if show and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(TQDMProgressBar(refresh_rate=progress_bar_refresh_rate))
    return L.Trainer(callbacks=callbacks, enable_progress_bar=show, **trainer_kwargs)
