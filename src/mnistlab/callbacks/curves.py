"""Training curves (loss, accuracy, generalization gap) drawn from the run's ``history.csv``."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from mnistlab.callbacks.evaluation import skip_artifacts
from mnistlab.callbacks.logging_images import log_images
from mnistlab.viz.curves import plot_training_curves, read_history
from mnistlab.viz.figures import save_figure

log = logging.getLogger(__name__)


class TrainingCurves(L.Callback):
    """Writes ``training_curves.png`` when fitting ends (after :class:`EpochHistory` wrote its last
    row). A test-only run (``eval.py``) draws the checkpoint's run history instead, if it exists.

    Args:
        dirpath: artifact folder.
        history_path: the CSV written by :class:`mnistlab.callbacks.EpochHistory`.
        log_to_loggers: also send the PNG to W&B / TensorBoard.
    """

    name = "training_curves"

    def __init__(
        self, dirpath: str | Path, history_path: str | Path, log_to_loggers: bool = True
    ) -> None:
        self.dirpath = Path(dirpath)
        self.history_path = Path(history_path)
        self.log_to_loggers = log_to_loggers
        self.path: Path | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.path is None and self.history_path.is_file():
            self.draw(trainer)

    def draw(self, trainer: L.Trainer) -> Path | None:
        if skip_artifacts(trainer) or not trainer.is_global_zero:
            return None
        rows = read_history(self.history_path) if self.history_path.is_file() else []
        if not rows:
            log.warning(
                "callbacks.training_curves: no epochs in %s, nothing to draw", self.history_path
            )
            return None
        self.path = save_figure(plot_training_curves(rows), self.dirpath / "training_curves.png")
        if self.log_to_loggers:
            log_images(trainer, {"artifacts/training_curves": self.path})
        return self.path
