"""Image galleries of the test set: the most confident mistakes, and prediction cards."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from mnistlab.artifacts.evaluation import Predictions, TestSetArtifact
from mnistlab.artifacts.figures import (
    CORRECT_COLOR,
    WRONG_COLOR,
    CanvasFigure,
    TileCanvas,
    short_name,
    to_unit_gray,
)
from mnistlab.errors import positive_int

#: light bar colors, so dark text on them stays readable
BAR_TRUE = "#a6dba0"
BAR_WRONG = "#f4a6a6"
BAR_OTHER = "#d9d9d9"


def most_confident_mistakes(probs: torch.Tensor, labels: torch.Tensor, limit: int) -> list[int]:
    """Positions of misclassified images, most confident (highest top-1 probability) first."""
    confidence, preds = probs.max(dim=1)
    wrong = torch.nonzero(preds != labels).flatten()
    order = torch.argsort(confidence[wrong], descending=True, stable=True)
    return wrong[order][:limit].tolist()


def plot_misclassified(
    images: torch.Tensor,
    labels: torch.Tensor,
    probs: torch.Tensor,
    positions: list[int],
    class_names: Sequence[str],
    total_wrong: int,
    columns: int = 8,
) -> CanvasFigure:
    """Grid of mistakes, each captioned ``true → predicted`` and the confidence."""
    columns = max(1, min(columns, len(positions) or 1))
    rows = max(1, math.ceil(len(positions) / columns))
    confidence, preds = probs.max(dim=1)
    captions = []
    for pos in positions:
        true, pred = int(labels[pos]), int(preds[pos])
        captions.append(
            f"{short_name(class_names[true], 9)} → {short_name(class_names[pred], 9)}\n"
            f"{float(confidence[pos]):.1%}"
        )
    # room between images for the widest caption (7.5 pt text is about 2 canvas pixels per character)
    widest = max((len(text.split("\n")[0]) for text in captions), default=0)
    gap = max(4, math.ceil(2.0 * widest) - 28 + 3)
    canvas = TileCanvas(rows, columns, tile=28, gap=gap, vgap=4, caption=10, top=10, right=1)
    for i, pos in enumerate(positions):
        canvas.put(*divmod(i, columns), to_unit_gray(images[pos]))
    captions = [(*canvas.caption_xy(*divmod(i, columns)), text) for i, text in enumerate(captions)]
    fig, ax = canvas.figure(scale=3)
    for x, y, text in captions:
        ax.text(
            x, y, text, ha="center", va="bottom", fontsize=7.5, color=WRONG_COLOR, linespacing=1.05
        )
    width = canvas.array.shape[1]
    if not positions:
        ax.text(
            width / 2,
            canvas.array.shape[0] / 2,
            "no misclassified test images",
            ha="center",
            va="center",
        )
    ax.text(
        width / 2,
        1,
        f"Most confident mistakes: {len(positions)} of {total_wrong:,} misclassified test "
        "images\n(true → predicted, confidence)",
        ha="center",
        va="top",
        fontsize=9,
    )
    return fig


def pick_cards(labels: torch.Tensor, num_cards: int, num_classes: int) -> list[int]:
    """The first test image of each class in turn (class 0, 1, ... then again), ``num_cards`` in all."""
    picks: list[int] = []
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(num_classes)]
    depth = 0
    while len(picks) < num_cards and any(depth < len(p) for p in per_class):
        picks += [p[depth] for p in per_class if depth < len(p)][: num_cards - len(picks)]
        depth += 1
    return picks


def plot_prediction_cards(
    images: torch.Tensor,
    labels: torch.Tensor,
    probs: torch.Tensor,
    positions: list[int],
    class_names: Sequence[str],
    top_k: int = 3,
    columns: int = 4,
) -> CanvasFigure:
    """Per image: the image and its ``top_k`` class probabilities as bars labeled with the class
    (green: the true class; red: the model's wrong top choice; gray: other classes)."""
    top_k = min(top_k, probs.shape[1])
    columns = max(1, min(columns, len(positions) or 1))
    rows = max(1, math.ceil(len(positions) / columns))
    tile, bar_w, gap = 28, 44, 2
    card_w = tile + gap + bar_w + 6
    # each card is a tile of width card_w; the image takes its left part and the bars the rest
    canvas = TileCanvas(rows, columns, tile=card_w, tile_h=tile, gap=4, caption=6, top=7, right=1)
    bar_h = max(4, (tile - 2 * (top_k - 1)) // top_k)
    texts = []
    for i, pos in enumerate(positions):
        r, c = divmod(i, columns)
        x0, y0 = canvas.origin(r, c)
        canvas.array[y0 : y0 + tile, x0 : x0 + tile] = to_unit_gray(images[pos])[..., None]
        true = int(labels[pos])
        values, classes = probs[pos].topk(top_k)
        correct = int(classes[0]) == true
        texts.append(
            (
                x0 + tile / 2 - 0.5,
                y0 - 1,
                f"true: {short_name(class_names[true], 12)}",
                {
                    "ha": "center",
                    "va": "bottom",
                    "fontsize": 7.5,
                    "color": CORRECT_COLOR if correct else WRONG_COLOR,
                },
            )
        )
        for k, (v, cls) in enumerate(zip(values.tolist(), classes.tolist(), strict=True)):
            color = BAR_TRUE if cls == true else (BAR_WRONG if k == 0 else BAR_OTHER)
            bx, by = x0 + tile + gap, y0 + k * (bar_h + 2)
            canvas.fill(bx, by, bar_w, bar_h, "#f3f3f3")  # the 100 % track
            canvas.fill(bx, by, round(v * bar_w), bar_h, color)
            pct = f"{v:.0%}" if v >= 0.005 else "<1%"
            texts.append(
                (
                    bx + 1,
                    by + bar_h / 2 - 0.5,
                    f"{short_name(class_names[cls], 12)} {pct}",
                    {"ha": "left", "va": "center", "fontsize": 7.5},
                )
            )
    fig, ax = canvas.figure(scale=3)
    for x, y, text, style in texts:
        ax.text(x, y, text, **style)
    ax.text(
        canvas.array.shape[1] / 2,
        1,
        f"Prediction cards: top-{top_k} class probabilities (bar length; green: true class)",
        ha="center",
        va="top",
        fontsize=9,
    )
    return fig


class MisclassifiedGallery(TestSetArtifact):
    """Writes ``misclassified.png``: up to ``max_images`` mistakes, most confident first,
    titled true → predicted (confidence).

    Args:
        dirpath: artifact folder.
        max_images: how many mistakes to show.
        columns: images per row.
    """

    name = "misclassified"
    caption = "The most confident mistakes, titled true → predicted (confidence)"
    files = ("misclassified.png",)
    needs_images = True

    def __init__(self, dirpath: str | Path, max_images: int = 32, columns: int = 8) -> None:
        super().__init__(dirpath)
        self.max_images = positive_int(max_images, "callbacks.misclassified.max_images")
        self.columns = positive_int(columns, "callbacks.misclassified.columns")

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


class PredictionCards(TestSetArtifact):
    """Writes ``prediction_cards.png``: ``num_cards`` test images (the first of each class in
    turn) with bar charts of their ``top_k`` class probabilities.

    Args:
        dirpath: artifact folder.
        num_cards: how many images.
        top_k: probabilities shown per image.
        columns: cards per row.
    """

    name = "prediction_cards"
    caption = "Test images with bar charts of their top-k class probabilities"
    files = ("prediction_cards.png",)
    needs_images = True

    def __init__(
        self, dirpath: str | Path, num_cards: int = 8, top_k: int = 3, columns: int = 4
    ) -> None:
        super().__init__(dirpath)
        self.num_cards = positive_int(num_cards, "callbacks.prediction_cards.num_cards")
        self.top_k = positive_int(top_k, "callbacks.prediction_cards.top_k")
        self.columns = positive_int(columns, "callbacks.prediction_cards.columns")

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
