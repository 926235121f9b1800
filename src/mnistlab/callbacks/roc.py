"""Per-class one-vs-rest ROC curves of the test set, and their AUCs."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from mnistlab.callbacks.evaluation import ArtifactWriter, Predictions
from mnistlab.utils import write_json
from mnistlab.viz.roc import plot_roc, roc_auc, roc_curves


class ROCArtifact(ArtifactWriter):
    """Writes ``roc.png`` (all classes, plus the top-left corner enlarged) and ``roc_auc.json``
    (AUC per class, macro and micro); logs ``test/auroc_macro`` and ``test/auroc_micro``.

    Args:
        dirpath: artifact folder.
        zoom_fpr: false-positive-rate range of the enlarged panel.
    """

    name = "roc"

    def __init__(self, dirpath: str | Path, zoom_fpr: float = 0.1) -> None:
        super().__init__(dirpath)
        self.zoom_fpr = zoom_fpr

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        aucs = roc_auc(result.probs, result.labels, result.class_names)
        write_json(self.dirpath / "roc_auc.json", aucs)
        curves = roc_curves(result.probs, result.labels, result.num_classes)
        self.save_figure(plot_roc(curves, aucs, result.class_names, self.zoom_fpr), "roc")
        return {"test/auroc_macro": aucs["macro"], "test/auroc_micro": aucs["micro"]}
