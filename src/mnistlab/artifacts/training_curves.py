"""Training curves (loss, accuracy, generalization gap) drawn from the run's ``history.csv``."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mnistlab.artifacts.base import Artifact
from mnistlab.artifacts.figures import new_figure
from mnistlab.callbacks.history import EpochHistory


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of :class:`mnistlab.callbacks.history.EpochHistory`'s CSV as floats (missing cells: NaN)."""
    with open(path, newline="") as f:
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def _column(rows: list[dict[str, float]], key: str) -> np.ndarray:
    return np.array([r.get(key, math.nan) for r in rows], dtype=float)


def generalization_gap(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    """Per epoch: train accuracy minus validation accuracy, and validation loss minus train loss
    (both positive when the model fits the training set better than unseen data)."""
    return {
        "acc": _column(rows, "train/acc") - _column(rows, "val/acc"),
        "loss": _column(rows, "val/loss") - _column(rows, "train/loss"),
    }


def plot_training_curves(rows: list[dict[str, float]]) -> Figure:
    """Three panels: loss, accuracy (train vs val) and the generalization gap, per epoch.

    Note: train metrics average over an epoch while the weights change (and with
    dropout/augmentation on), validation uses the weights at the epoch's end.
    """
    epochs = _column(rows, "epoch")  # 1 = after the first epoch, as in history.csv
    fig = new_figure(13, 3.9, left=0.6, right=0.15, bottom=0.55, top=0.65, wspace=0.22)
    loss_ax, acc_ax, gap_ax = fig.subplots(1, 3)
    marker = "o" if len(rows) <= 30 else None
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
        for split, color in (("train", "#4c72b0"), ("val", "#dd8452")):
            ax.plot(
                epochs,
                _column(rows, f"{split}/{key}"),
                marker=marker,
                ms=4,
                color=color,
                label=split,
            )
        ax.set_title(label, fontsize=10)
    acc_ax.set_ylim(top=1.0)
    best = _column(rows, "val/acc")
    if np.isfinite(best).any():
        i = int(np.nanargmax(best))
        acc_ax.plot(
            epochs[i],
            best[i],
            marker="*",
            ms=12,
            color="#dd8452",
            ls="none",
            label=f"best val {best[i]:.4f} (epoch {int(epochs[i])})",
        )
    gap = generalization_gap(rows)
    gap_ax.axhline(0, color="gray", lw=0.8)
    gap_ax.plot(
        epochs, gap["acc"], marker=marker, ms=4, color="#55a868", label="train acc − val acc"
    )
    gap_ax.plot(
        epochs, gap["loss"], marker=marker, ms=4, color="#c44e52", label="val loss − train loss"
    )
    gap_ax.set_title("generalization gap (> 0: better on train)", fontsize=10)
    for ax in (loss_ax, acc_ax, gap_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if len(rows) == 1:  # MaxNLocator would fall back to fractional ticks
            ax.set_xlim(0.5, 1.5)
            ax.set_xticks([1])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(
        f"Training curves ({len(rows)} epoch{'s' if len(rows) != 1 else ''}; "
        "train metrics are averaged over each epoch, val at its end)",
        fontsize=10,
    )
    return fig


log = logging.getLogger(__name__)


class TrainingCurves(Artifact):
    """Train vs validation loss and accuracy per epoch, and the generalization gap.

    Drawn when fitting ends from the rows :class:`~mnistlab.callbacks.history.EpochHistory`
    keeps in memory. A test-only run (``eval.py``) draws the checkpoint's run history from
    ``history_path`` instead, if that file exists.

    Args:
        dirpath: artifact folder.
        history_path: the run's ``history.csv``, read when no EpochHistory is training.
        log_to_loggers: also send the PNG to W&B / TensorBoard.
    """

    name = "training_curves"
    caption = "Train vs validation loss and accuracy per epoch, and the generalization gap"
    kind = "training"
    files = ("training_curves.png",)

    def __init__(
        self,
        dirpath: str | Path | None = None,
        history_path: str | Path | None = None,
        log_to_loggers: bool = True,
    ) -> None:
        super().__init__(dirpath, log_to_loggers)
        self.history_path = Path(history_path) if history_path else None
        self.path: Path | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        history = next((cb for cb in trainer.callbacks if isinstance(cb, EpochHistory)), None)
        self.draw(trainer, history.rows if history is not None else self._read())

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.path is None:
            self.draw(trainer, self._read())

    def _read(self) -> list[dict[str, float]]:
        if self.history_path is None or not self.history_path.is_file():
            return []
        return read_history(self.history_path)

    def draw(self, trainer: L.Trainer, rows: list[dict[str, float]]) -> Path | None:
        if self.skip(trainer):
            return None
        if not rows:
            if trainer.state.fn == "fit":
                log.warning("callbacks.training_curves: no finished epoch, nothing to draw")
            return None
        self.out_dir(trainer)
        self.figures = {}
        self.path = self.save_figure(plot_training_curves(rows), "training_curves")
        self.send_figures(trainer)
        return self.path
