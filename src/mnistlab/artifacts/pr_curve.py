"""Per-class precision-recall curves of the test set, and their average precision.

ROC curves flatter a classifier when a class is rare among the "negatives" of
one-vs-rest: 9 of 10 test images are negatives for each class. Precision-recall
shows what a user of one class sees: of the images called "shirt", how many are.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from torchmetrics.functional.classification import (
    multiclass_average_precision,
    multiclass_precision_recall_curve,
)

from mnistlab.artifacts.evaluation import Predictions, TestSetArtifact
from mnistlab.artifacts.figures import grid_figure, short_name


def average_precision(
    probs: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
) -> dict:
    """Average precision (area under the step-wise PR curve, as scikit-learn computes it) per
    class and its macro mean; a class absent from ``labels`` gets NaN and is left out."""
    probs, labels = probs.float().cpu(), labels.cpu()
    n = len(class_names)
    with warnings.catch_warnings():  # absent classes are handled below
        warnings.filterwarnings("ignore", message=".*(positive|negative) samples.*")
        per_class = multiclass_average_precision(probs, labels, n, average="none", thresholds=None)
    present = torch.bincount(labels, minlength=n) > 0
    per_class = torch.where(present, per_class, torch.nan)
    macro = float(per_class[present].mean()) if present.any() else math.nan
    return {
        "per_class": {name: float(per_class[i]) for i, name in enumerate(class_names)},
        "macro": macro,
    }


def pr_curves(
    probs: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{class index: (recall, precision)}`` as NumPy arrays."""
    precision, recall, _ = multiclass_precision_recall_curve(
        probs.float().cpu(), labels.cpu(), num_classes, thresholds=None
    )
    return {i: (recall[i].numpy(), precision[i].numpy()) for i in range(num_classes)}


def plot_pr_curves(
    curves: dict[int, tuple[np.ndarray, np.ndarray]], ap: dict, class_names: Sequence[str]
) -> Figure:
    """All classes on one axis, the legend sorted from the lowest average precision up."""
    fig, (ax,) = grid_figure(1, cols=1, size=(7.5, 5.2))
    scores = [ap["per_class"][name] for name in class_names]
    order = sorted(range(len(class_names)), key=lambda i: (math.isnan(scores[i]), scores[i]))
    cmap = colormaps["tab10" if len(class_names) <= 10 else "tab20"]
    colors = [cmap(i % cmap.N) for i in range(len(class_names))]
    for i in order:
        recall, precision = curves[i]
        ax.step(
            recall,
            precision,
            where="post",
            color=colors[i],
            lw=1.4,
            label=f"{short_name(class_names[i])}  AP {scores[i]:.4f}",
        )
    ax.set_xlim(0, 1.0)
    ax.set_ylim(max(0.0, min(float(np.nanmin(curves[i][1])) for i in order) - 0.02), 1.005)
    ax.set_xlabel("recall (share of the class found)")
    ax.set_ylabel("precision (share of predictions that are right)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", title="lowest AP first", title_fontsize=8)
    ax.set_title(
        f"Precision-recall per class on the test set: macro AP {ap['macro']:.4f}", fontsize=11
    )
    return fig


class PrecisionRecallArtifact(TestSetArtifact):
    """Writes ``pr_curve.png`` (one step curve per class) and ``pr_auc.json`` (average
    precision per class and macro); logs ``test/ap_macro``.

    Args:
        dirpath: artifact folder.
    """

    name = "pr_curve"
    caption = "Precision-recall curve and average precision per class: what one class's user sees"
    files = ("pr_curve.png", "pr_auc.json")

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        ap = average_precision(result.probs, result.labels, result.class_names)
        self.write_json("pr_auc.json", ap)
        curves = pr_curves(result.probs, result.labels, result.num_classes)
        self.save_figure(plot_pr_curves(curves, ap, result.class_names), "pr_curve")
        return {"test/ap_macro": ap["macro"]}
