"""Confusion matrix of the test set: PNG (counts and row-normalized), CSVs, most-confused pairs."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L

from mnistlab.callbacks.evaluation import ArtifactWriter, Predictions
from mnistlab.viz.confusion import (
    confusion_matrix,
    most_confused_pairs,
    plot_confusion_matrix,
    row_normalize,
    write_confusion_csv,
)

log = logging.getLogger(__name__)


class ConfusionMatrixArtifact(ArtifactWriter):
    """Writes ``confusion_matrix.png``, ``confusion_matrix.csv`` (counts, rows = true class),
    ``confusion_matrix_normalized.csv`` (row rates) and ``confused_pairs.csv``.

    Args:
        dirpath: artifact folder.
        top_pairs: how many most-confused (true, predicted) pairs to list.
    """

    name = "confusion_matrix"

    def __init__(self, dirpath: str | Path, top_pairs: int = 10) -> None:
        super().__init__(dirpath)
        self.top_pairs = top_pairs

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        names = result.class_names
        cm = confusion_matrix(result.preds, result.labels, result.num_classes)
        pairs = most_confused_pairs(cm, names, self.top_pairs)
        write_confusion_csv(cm, names, self.dirpath / "confusion_matrix.csv")
        rates = row_normalize(cm)
        with open(self.dirpath / "confusion_matrix_normalized.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["true \\ predicted", *names])
            writer.writerows(
                [name, *(f"{v:.4f}" for v in row)]
                for name, row in zip(names, rates.tolist(), strict=True)
            )
        with open(self.dirpath / "confused_pairs.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["true", "predicted", "count", "rate"])
            writer.writeheader()
            writer.writerows(pairs)
        self.save_figure(plot_confusion_matrix(cm, names, pairs), "confusion_matrix")
        if pairs:
            log.info(
                "most confused (true -> predicted): %s",
                ", ".join(f"{p['true']} -> {p['predicted']} ({p['count']})" for p in pairs[:5]),
            )
        return {}
