"""Confusion matrix of the test set: PNG (counts and row-normalized), CSVs, most-confused pairs."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import multiclass_confusion_matrix

from mnistlab.artifacts.evaluation import Predictions, TestSetArtifact
from mnistlab.artifacts.figures import new_figure, short_name, tick_room


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``cm[true, predicted]`` (int64, CPU) from predicted class ids or logits/probabilities."""
    return multiclass_confusion_matrix(preds.cpu(), labels.cpu(), num_classes).long()


def row_normalize(cm: torch.Tensor) -> torch.Tensor:
    """Each row divided by its class's support: the rate of each prediction per true class."""
    support = cm.sum(dim=1, keepdim=True).clamp(min=1)
    return cm.double() / support


def most_confused_pairs(cm: torch.Tensor, class_names: Sequence[str], k: int = 5) -> list[dict]:
    """The ``k`` largest off-diagonal cells, largest first: true class, predicted class, count, rate."""
    off = cm.clone()
    off.fill_diagonal_(0)
    rates = row_normalize(cm)
    order = torch.argsort(off.flatten(), descending=True, stable=True)[:k]
    n = cm.shape[0]
    pairs = []
    for flat in order.tolist():
        true, pred = divmod(flat, n)
        if off[true, pred] == 0:
            break
        pairs.append(
            {
                "true": class_names[true],
                "predicted": class_names[pred],
                "count": int(cm[true, pred]),
                "rate": round(float(rates[true, pred]), 4),
            }
        )
    return pairs


def write_confusion_csv(cm: torch.Tensor, class_names: Sequence[str], path: Path) -> Path:
    """Rows = true class, columns = predicted class, with class names as headers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, cm.tolist(), strict=True):
            writer.writerow([name, *row])
    return path


def read_confusion_csv(path: Path) -> tuple[list[str], torch.Tensor]:
    """Inverse of :func:`write_confusion_csv`."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    return names, torch.tensor([[int(v) for v in row[1:]] for row in rows[1:]])


def _draw_matrix(
    ax, values: np.ndarray, labels: list[str], fmt: str, title: str, vmax: float
) -> None:
    n = len(labels)
    ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
    rotated = max(map(len, labels)) > 2
    ax.set_xticks(
        range(n),
        labels,
        rotation=45 if rotated else 0,
        ha="right" if rotated else "center",
        rotation_mode="anchor",
        fontsize=8,
    )
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fontsize = 7 if n <= 10 else 5
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            if v == 0:
                continue
            text = fmt.format(v)
            if fmt == "{:.2f}" and text == "0.00":
                continue
            ax.text(
                j,
                i,
                text.lstrip("0") if fmt == "{:.2f}" and v < 1 else text,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if v > 0.55 * vmax else "black",
            )


def plot_confusion_matrix(
    cm: torch.Tensor, class_names: Sequence[str], pairs: list[dict] | None = None
) -> Figure:
    """Counts (left) and row-normalized rates (right); the most-confused pairs under the title."""
    labels = [short_name(n) for n in class_names]
    counts = cm.cpu().numpy()
    rates = row_normalize(cm).numpy()
    rotated = max(map(len, labels)) > 2
    below = tick_room(labels, 8, rotated) + 0.3  # tick labels + "predicted"
    beside = tick_room(labels, 8, rotated=True) + 0.3
    side = 4.6  # inches per matrix
    width = 2 * (beside + side) + 0.5
    fig = new_figure(
        width,
        side + below + 1.0,
        left=beside,
        right=0.15,
        bottom=below,
        top=1.0,
        wspace=(beside + 0.25) / side,
    )
    left, right = fig.subplots(1, 2)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    # color scale of the counts: the largest mistake, so mistakes stay visible next to the diagonal
    _draw_matrix(
        left,
        counts,
        labels,
        "{:d}",
        "counts (colors saturate at the diagonal)",
        vmax=max(float(off.max()) * 3, 1.0),
    )
    _draw_matrix(
        right, rates, labels, "{:.2f}", "row-normalized (recall on the diagonal)", vmax=1.0
    )
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    title = f"Confusion matrix on {int(counts.sum()):,} test images (accuracy {accuracy:.2%})"
    if pairs:
        title += "\nmost confused: " + ", ".join(
            f"{p['true']} → {p['predicted']} ({p['count']})" for p in pairs[:4]
        )
    fig.suptitle(title, fontsize=11)
    return fig


log = logging.getLogger(__name__)


class ConfusionMatrixArtifact(TestSetArtifact):
    """Writes ``confusion_matrix.png``, ``confusion_matrix.csv`` (counts, rows = true class),
    ``confusion_matrix_normalized.csv`` (row rates) and ``confused_pairs.csv``.

    Args:
        dirpath: artifact folder.
        top_pairs: how many most-confused (true, predicted) pairs to list.
    """

    name = "confusion_matrix"
    caption = "Which classes the model mixes up: counts, row rates and the most-confused pairs"
    files = (
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "confusion_matrix_normalized.csv",
        "confused_pairs.csv",
    )

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
