"""Per-class precision, recall, F1, support and accuracy of the test set, with a bar chart."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from mnistlab.callbacks.evaluation import ArtifactWriter, Predictions
from mnistlab.utils import write_json
from mnistlab.viz.per_class import (
    hardest_and_easiest,
    per_class_metrics,
    plot_per_class,
    write_per_class_csv,
)

log = logging.getLogger(__name__)


class PerClassArtifact(ArtifactWriter):
    """Writes ``per_class.csv``, ``per_class.json`` (rows plus the hardest and easiest class by F1)
    and ``per_class.png``."""

    name = "per_class"

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
