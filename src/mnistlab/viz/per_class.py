"""Per-class precision, recall, F1, support and accuracy: which classes are hard."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from mnistlab.viz.figures import class_bar_figure

FIELDS = ("class", "precision", "recall", "f1", "support", "accuracy")


def per_class_metrics(
    preds: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
) -> list[dict]:
    """One row per class. ``accuracy`` is the fraction of the class's images classified correctly
    (torchmetrics' per-class accuracy, equal to recall); ``support`` counts the class's images."""
    n = len(class_names)
    preds, labels = preds.cpu(), labels.cpu()
    columns = {
        "precision": multiclass_precision(preds, labels, n, average="none"),
        "recall": multiclass_recall(preds, labels, n, average="none"),
        "f1": multiclass_f1_score(preds, labels, n, average="none"),
        "accuracy": multiclass_accuracy(preds, labels, n, average="none"),
    }
    support = torch.bincount(labels, minlength=n)
    return [
        {
            "class": name,
            **{k: round(float(v[i]), 6) for k, v in columns.items()},
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    ]


def hardest_and_easiest(rows: list[dict], by: str = "f1") -> tuple[dict, dict]:
    """Rows of the class with the lowest and the highest ``by`` (ties: first class)."""
    scored = [r for r in rows if r["support"] > 0] or rows
    return min(scored, key=lambda r: r[by]), max(scored, key=lambda r: r[by])


def write_per_class_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: r[k] for k in FIELDS} for r in rows)
    return path


def plot_per_class(rows: list[dict]) -> Figure:
    """Grouped bars of precision, recall and F1 per class; y axis zoomed to the worst value."""
    fig, ax, x = class_bar_figure([r["class"] for r in rows], 3.6, right=1.2, top=0.45)
    width = 0.27
    lowest = 1.0
    for offset, key, color in (
        (-width, "precision", "#4c72b0"),
        (0, "recall", "#dd8452"),
        (width, "f1", "#55a868"),
    ):
        values = np.array([r[key] for r in rows])
        lowest = min(lowest, float(values.min()))
        ax.bar(x + offset, values, width, label=key, color=color)
    bottom = max(0.0, np.floor((lowest - 0.05) * 20) / 20)
    ax.set_ylim(bottom, 1.0)
    ax.set_ylabel("score" + (f" (axis starts at {bottom:.2f})" if bottom > 0 else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    hard, easy = hardest_and_easiest(rows)
    ax.set_title(
        f"Per-class metrics on the test set: hardest {hard['class']} (F1 {hard['f1']:.3f}), "
        f"easiest {easy['class']} (F1 {easy['f1']:.3f})",
        fontsize=11,
    )
    return fig
