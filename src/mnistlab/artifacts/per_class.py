"""Per-class precision, recall, F1, support and accuracy of the test set, with a bar chart."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from mnistlab.artifacts.evaluation import Predictions, TestSetArtifact
from mnistlab.artifacts.figures import class_bar_figure
from mnistlab.files import write_json

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


log = logging.getLogger(__name__)


class PerClassArtifact(TestSetArtifact):
    """Writes ``per_class.csv``, ``per_class.json`` (rows plus the hardest and easiest class by F1)
    and ``per_class.png``."""

    name = "per_class"
    caption = "Precision, recall, F1, support and accuracy per class; the hardest and easiest class"
    files = ("per_class.png", "per_class.csv", "per_class.json")

    def __init__(self, dirpath: str | Path) -> None:
        super().__init__(dirpath)

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        rows = per_class_metrics(result.preds, result.labels, result.class_names)
        hard, easy = hardest_and_easiest(rows)
        write_per_class_csv(rows, self.dirpath / "per_class.csv")
        write_json(
            self.dirpath / "per_class.json",
            {
                "hardest": hard["class"],
                "easiest": easy["class"],
                "ranked_by": "f1",
                "classes": rows,
            },
        )
        self.save_figure(plot_per_class(rows), "per_class")
        log.info(
            "hardest class: %s (F1 %.4f), easiest: %s (F1 %.4f)",
            hard["class"],
            hard["f1"],
            easy["class"],
            easy["f1"],
        )
        return {}
