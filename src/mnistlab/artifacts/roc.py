"""Per-class one-vs-rest ROC curves of the test set, and their AUCs."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_roc,
    multiclass_auroc,
    multiclass_roc,
)

from mnistlab.artifacts.evaluation import Predictions, TestSetArtifact
from mnistlab.artifacts.figures import new_figure


def roc_auc(probs: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> dict:
    """AUC per class (one-vs-rest), macro (mean over classes) and micro (all decisions pooled).

    A class absent from ``labels`` (or the only one there) has no ROC curve: its AUC is NaN and it is left
    out of the macro mean.
    """
    probs, labels = probs.float().cpu(), labels.cpu()
    n = len(class_names)
    with (
        warnings.catch_warnings()
    ):  # absent classes are handled below; torchmetrics warns about them
        warnings.filterwarnings("ignore", message=".*(positive|negative) samples in targets.*")
        per_class = multiclass_auroc(probs, labels, n, average="none", thresholds=None)
    counts = torch.bincount(labels, minlength=n)
    present = (counts > 0) & (counts < len(labels))  # a curve needs positives and negatives
    per_class = torch.where(present, per_class, torch.nan)
    if bool(present.all()):
        macro = float(multiclass_auroc(probs, labels, n, average="macro", thresholds=None))
    else:
        macro = float(per_class[present].mean()) if present.any() else math.nan
    onehot = F.one_hot(labels, n)
    micro = float(binary_auroc(probs.flatten(), onehot.flatten(), thresholds=None))
    return {
        "per_class": {name: float(per_class[i]) for i, name in enumerate(class_names)},
        "macro": macro,
        "micro": micro,
    }


def roc_curves(
    probs: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{class index or 'micro': (fpr, tpr)}`` as NumPy arrays."""
    probs, labels = probs.float().cpu(), labels.cpu()
    fprs, tprs, _ = multiclass_roc(probs, labels, num_classes, thresholds=None)
    curves: dict = {i: (fprs[i].numpy(), tprs[i].numpy()) for i in range(num_classes)}
    fpr, tpr, _ = binary_roc(
        probs.flatten(), F.one_hot(labels, num_classes).flatten(), thresholds=None
    )
    curves["micro"] = (fpr.numpy(), tpr.numpy())
    return curves


def thin_curve(
    fpr: np.ndarray, tpr: np.ndarray, max_points: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``max_points`` vertices of a ROC curve, dense near FPR 0 where curves differ;
    drawing 10,000-point curves costs time and changes nothing visible."""
    if len(fpr) <= max_points:
        return fpr, tpr
    grid = np.concatenate(
        [np.linspace(0, 1, max_points // 2), np.geomspace(1e-5, 1, max_points // 2)]
    )
    keep = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    # keep both ends of each vertical jump (the step shape) and the final point
    keep = np.unique(np.concatenate([keep, np.clip(keep + 1, 0, len(fpr) - 1), [0, len(fpr) - 1]]))
    return fpr[keep], tpr[keep]


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, x: float) -> float:
    return float(np.interp(x, fpr, tpr))


def plot_roc(curves: dict, aucs: dict, class_names: Sequence[str], zoom_fpr: float = 0.1) -> Figure:
    """All classes on one axes (left) and the top-left corner enlarged (right), AUC in the legend."""
    fig = new_figure(12, 5.6, left=0.65, right=0.15, bottom=0.55, top=0.65, wspace=0.18)
    full, zoom = fig.subplots(1, 2)
    colors = matplotlib.colormaps["tab10" if len(class_names) <= 10 else "tab20"]
    lowest = 1.0
    for i, name in enumerate(class_names):
        fpr, tpr = thin_curve(*curves[i])
        auc = aucs["per_class"][name]
        label = f"{name} ({auc:.4f})" if math.isfinite(auc) else f"{name} (no test images)"
        for ax in (full, zoom):
            ax.plot(
                fpr, tpr, color=colors(i % colors.N), lw=1.3, label=label if ax is full else None
            )
        if math.isfinite(auc):
            lowest = min(lowest, _tpr_at(fpr, tpr, 0.05 * zoom_fpr))
    fpr, tpr = thin_curve(*curves["micro"])
    for ax in (full, zoom):
        ax.plot(
            fpr,
            tpr,
            color="black",
            lw=1.6,
            ls="--",
            label=f"micro average ({aucs['micro']:.4f})" if ax is full else None,
        )
    full.plot([0, 1], [0, 1], color="gray", lw=0.8, ls=":", label="chance (0.5)")
    full.set_xlim(0, 1)
    full.set_ylim(0, 1.01)
    full.set_xlabel("false positive rate")
    full.set_ylabel("true positive rate")
    full.legend(title="class (AUC)", fontsize=8, title_fontsize=8, loc="lower right")
    full.set_title("one-vs-rest ROC per class", fontsize=10)
    bottom = max(0.0, math.floor((min(lowest, 0.99) - 0.01) * 50) / 50)
    zoom.set_xlim(0, zoom_fpr)
    zoom.set_ylim(bottom, 1.002)
    zoom.set_xlabel("false positive rate")
    zoom.set_title(f"top-left corner enlarged (FPR ≤ {zoom_fpr:g})", fontsize=10)
    for ax in (full, zoom):
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"ROC on the test set: macro AUC {aucs['macro']:.4f}, micro AUC {aucs['micro']:.4f}",
        fontsize=11,
    )
    return fig


class ROCArtifact(TestSetArtifact):
    """Writes ``roc.png`` (all classes, plus the top-left corner enlarged) and ``roc_auc.json``
    (AUC per class, macro and micro); logs ``test/auroc_macro`` and ``test/auroc_micro``.

    Args:
        dirpath: artifact folder.
        zoom_fpr: false-positive-rate range of the enlarged panel.
    """

    name = "roc"
    caption = "One-vs-rest ROC curve and AUC per class, macro and micro"
    files = ("roc.png", "roc_auc.json")

    def __init__(self, dirpath: str | Path, zoom_fpr: float = 0.1) -> None:
        super().__init__(dirpath)
        self.zoom_fpr = zoom_fpr

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        aucs = roc_auc(result.probs, result.labels, result.class_names)
        self.write_json("roc_auc.json", aucs)
        curves = roc_curves(result.probs, result.labels, result.num_classes)
        self.save_figure(plot_roc(curves, aucs, result.class_names, self.zoom_fpr), "roc")
        return {"test/auroc_macro": aucs["macro"], "test/auroc_micro": aucs["micro"]}
