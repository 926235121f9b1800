"""Image galleries of the test set: the most confident mistakes, and prediction cards."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from mnistlab.callbacks.evaluation import ArtifactWriter, Predictions
from mnistlab.errors import ConfigError
from mnistlab.viz.galleries import (
    most_confident_mistakes,
    pick_cards,
    plot_misclassified,
    plot_prediction_cards,
)


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"callbacks.{field}={value!r} must be a whole number >= 1")
    return value


class MisclassifiedGallery(ArtifactWriter):
    """Writes ``misclassified.png``: up to ``max_images`` mistakes, most confident first,
    titled true → predicted (confidence).

    Args:
        dirpath: artifact folder.
        max_images: how many mistakes to show.
        columns: images per row.
    """

    name = "misclassified"
    needs_images = True

    def __init__(self, dirpath: str | Path, max_images: int = 32, columns: int = 8) -> None:
        super().__init__(dirpath)
        self.max_images = _count(max_images, "misclassified.max_images")
        self.columns = _count(columns, "misclassified.columns")

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        positions = most_confident_mistakes(result.probs, result.labels, self.max_images)
        total_wrong = int((result.preds != result.labels).sum())
        fig = plot_misclassified(
            result.images,
            result.labels,
            result.probs,
            positions,
            result.class_names,
            total_wrong,
            self.columns,
        )
        self.save_figure(fig, "misclassified")
        return {}


class PredictionCards(ArtifactWriter):
    """Writes ``prediction_cards.png``: ``num_cards`` test images (the first of each class in
    turn) with bar charts of their ``top_k`` class probabilities.

    Args:
        dirpath: artifact folder.
        num_cards: how many images.
        top_k: probabilities shown per image.
        columns: cards per row.
    """

    name = "prediction_cards"
    needs_images = True

    def __init__(
        self, dirpath: str | Path, num_cards: int = 8, top_k: int = 3, columns: int = 4
    ) -> None:
        super().__init__(dirpath)
        self.num_cards = _count(num_cards, "prediction_cards.num_cards")
        self.top_k = _count(top_k, "prediction_cards.top_k")
        self.columns = _count(columns, "prediction_cards.columns")

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        positions = pick_cards(result.labels, self.num_cards, result.num_classes)
        fig = plot_prediction_cards(
            result.images,
            result.labels,
            result.probs,
            positions,
            result.class_names,
            self.top_k,
            self.columns,
        )
        self.save_figure(fig, "prediction_cards")
        return {}
