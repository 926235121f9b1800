"""Training curves from ``history.csv``: loss, accuracy and the generalization gap per epoch."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mnistlab.viz.figures import new_figure


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of :class:`mnistlab.callbacks.EpochHistory`'s CSV as floats (missing cells: NaN)."""
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
    epochs = _column(rows, "epoch") + 1  # 1-based: "after epoch 1"
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
