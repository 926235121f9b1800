"""Calibration of the test set's confidences: reliability diagram and expected calibration error."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from mnistlab.callbacks.evaluation import ArtifactWriter, Predictions
from mnistlab.errors import ConfigError
from mnistlab.utils import write_json
from mnistlab.viz.calibration import calibration_errors, plot_reliability, reliability_bins


class CalibrationArtifact(ArtifactWriter):
    """Writes ``calibration.png`` and ``calibration.json`` (ECE, MCE, per-bin confidence and
    accuracy); logs ``test/ece``.

    Args:
        dirpath: artifact folder.
        n_bins: equal-width confidence bins of the ECE and the diagram.
    """

    name = "calibration"

    def __init__(self, dirpath: str | Path, n_bins: int = 15) -> None:
        super().__init__(dirpath)
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
            raise ConfigError(
                f"callbacks.calibration.n_bins={n_bins!r} must be a whole number >= 1 (e.g. 15)"
            )
        self.n_bins = n_bins

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        errors = calibration_errors(result.probs, result.labels, self.n_bins)
        bins = reliability_bins(result.probs, result.labels, self.n_bins)
        write_json(self.dirpath / "calibration.json", {**errors, "bins": bins})
        self.save_figure(plot_reliability(bins, errors), "calibration")
        return {"test/ece": errors["ece"], "test/mce": errors["mce"]}
