"""Calibration of the test set's confidences: reliability diagram and expected calibration error."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import multiclass_calibration_error

from mnistlab.artifacts.evaluation import Predictions, TestSetArtifact
from mnistlab.artifacts.figures import new_figure
from mnistlab.errors import positive_int


def calibration_errors(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15
) -> dict[str, float]:
    """Expected (ECE, mean |accuracy - confidence| weighted by bin size) and maximum (MCE)
    calibration error of the top-1 confidence, over ``n_bins`` equal-width bins (torchmetrics)."""
    probs, labels = probs.float().cpu(), labels.cpu()
    n = probs.shape[1]
    ece = multiclass_calibration_error(probs, labels, n, n_bins=n_bins, norm="l1")
    mce = multiclass_calibration_error(probs, labels, n, n_bins=n_bins, norm="max")
    return {"ece": float(ece), "mce": float(mce), "n_bins": n_bins}


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> list[dict]:
    """Per equal-width confidence bin: range, image count, mean confidence and accuracy
    (the points of the reliability diagram; empty bins have count 0 and null means)."""
    probs, labels = probs.float().cpu(), labels.cpu()
    confidence, preds = probs.max(dim=1)
    correct = (preds == labels).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = (torch.bucketize(confidence.double(), edges, right=True) - 1).clamp(0, n_bins - 1)
    count = torch.bincount(index, minlength=n_bins)
    conf_sum = torch.bincount(index, weights=confidence.double(), minlength=n_bins)
    acc_sum = torch.bincount(index, weights=correct, minlength=n_bins)
    bins = []
    for b in range(n_bins):
        c = int(count[b])
        bins.append(
            {
                "lower": round(float(edges[b]), 6),
                "upper": round(float(edges[b + 1]), 6),
                "count": c,
                "confidence": float(conf_sum[b] / c) if c else None,
                "accuracy": float(acc_sum[b] / c) if c else None,
            }
        )
    return bins


def plot_reliability(bins: list[dict], errors: dict[str, float]) -> Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration (top) and
    how many test images fall in each bin, on a log scale (bottom)."""
    fig = new_figure(6, 6.4, left=0.8, right=0.2, bottom=0.6, top=0.4, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    lower = np.array([b["lower"] for b in bins])
    width = np.array([b["upper"] - b["lower"] for b in bins])
    count = np.array([b["count"] for b in bins])
    filled = count > 0
    acc = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    conf = np.array([b["confidence"] if b["count"] else 0.0 for b in bins])
    # bins holding few images are drawn pale: their accuracy is noise
    few = count < max(20, 0.001 * count.sum())
    for mask, alpha, label in ((filled & ~few, 1.0, "accuracy"), (filled & few, 0.3, None)):
        if not mask.any():
            continue
        top.bar(
            lower[mask],
            acc[mask],
            width[mask],
            align="edge",
            color="#4c72b0",
            alpha=alpha,
            edgecolor="white",
            label=label,
        )
        top.bar(
            lower[mask],
            np.abs(conf - acc)[mask],
            width[mask],
            bottom=np.minimum(acc, conf)[mask],
            align="edge",
            facecolor="none",
            edgecolor="#d62728",
            hatch="///",
            lw=0.8,
            alpha=alpha,
            label="gap to confidence" if label else None,
        )
    top.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy in bin")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(
        f"Reliability diagram: ECE {errors['ece']:.4f}, MCE {errors['mce']:.4f} "
        f"({errors['n_bins']} bins)",
        fontsize=10,
    )
    bottom.bar(
        lower[filled],
        count[filled],
        width[filled],
        align="edge",
        color="#8c8c8c",
        edgecolor="white",
    )
    bottom.set_yscale("log")
    if (filled & few).any():
        bottom.text(
            0.01,
            0.93,
            f"pale bins above: fewer than {max(20, int(0.001 * count.sum()))} images",
            transform=bottom.transAxes,
            va="top",
            fontsize=7.5,
            color="#555555",
        )
    bottom.set_xlabel("confidence (top-1 probability)")
    bottom.set_ylabel("images")
    bottom.grid(alpha=0.3)
    return fig


class CalibrationArtifact(TestSetArtifact):
    """Writes ``calibration.png`` and ``calibration.json`` (ECE, MCE, per-bin confidence and
    accuracy); logs ``test/ece``.

    Args:
        dirpath: artifact folder.
        n_bins: equal-width confidence bins of the ECE and the diagram.
    """

    name = "calibration"
    caption = "Reliability diagram: does a 90%-confident prediction come true 90% of the time? ECE and MCE"
    files = ("calibration.png", "calibration.json")

    def __init__(self, dirpath: str | Path, n_bins: int = 15) -> None:
        super().__init__(dirpath)
        self.n_bins = positive_int(n_bins, "callbacks.calibration.n_bins", hint=" (e.g. 15)")

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        errors = calibration_errors(result.probs, result.labels, self.n_bins)
        bins = reliability_bins(result.probs, result.labels, self.n_bins)
        self.write_json("calibration.json", {**errors, "bins": bins})
        self.save_figure(plot_reliability(bins, errors), "calibration")
        return {"test/ece": errors["ece"], "test/mce": errors["mce"]}
