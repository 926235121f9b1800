"""What the data set looks like: sample images per class, class counts per split, mean images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from mnistlab.viz.figures import class_bar_figure, new_figure, short_name, tick_room


def samples_per_class(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int
) -> torch.Tensor:
    """uint8 (num_classes * per_class, 1, H, W): the first ``per_class`` images of each class, class by class
    (a class with fewer images is padded with black)."""
    rows = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()[:per_class]
        chosen = images[idx]
        if len(chosen) < per_class:
            chosen = torch.cat(
                [chosen, chosen.new_zeros((per_class - len(chosen), *images.shape[1:]))]
            )
        rows.append(chosen)
    return torch.cat(rows)


def mean_images(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float (num_classes, 1, H, W) in [0, 1]: the average image of each class (zeros if absent)."""
    sums = torch.zeros((num_classes, *images.shape[1:]), dtype=torch.float64)
    sums.index_add_(0, labels.cpu(), images.cpu().double())
    counts = torch.bincount(labels.cpu(), minlength=num_classes).clamp(min=1).double()
    return (sums / counts.view(-1, 1, 1, 1) / 255.0).float()


def _mosaic(ax, tiles: torch.Tensor, nrow: int, padding: int = 2) -> None:
    """Draw tiles (N, 1, H, W) as one image (one imshow: fast even for hundreds of tiles)."""
    tiles = tiles.float() / 255.0 if tiles.dtype == torch.uint8 else tiles.float()
    grid = make_grid(tiles, nrow=nrow, padding=padding, pad_value=0.35)[0].numpy()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")


def plot_samples(
    tiles: torch.Tensor, class_names: Sequence[str], per_class: int, dataset: str
) -> Figure:
    """One row per class of sample training images, class names on the left."""
    n = len(class_names)
    h = tiles.shape[-2] + 2
    label = tick_room([short_name(c, 12) for c in class_names], 9, rotated=True)
    fig = new_figure(
        0.62 * per_class + label + 0.1, 0.62 * n + 0.45, left=label, right=0.1, bottom=0.05, top=0.4
    )
    ax = fig.subplots()
    _mosaic(ax, tiles, nrow=per_class)
    ax.set_yticks(
        [2 + h * i + (h - 2) / 2 for i in range(n)],
        [short_name(c, 12) for c in class_names],
        fontsize=9,
    )
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{dataset}: the first {per_class} training images of each class", fontsize=10)
    return fig


def plot_mean_images(means: torch.Tensor, class_names: Sequence[str], dataset: str) -> Figure:
    """The average training image of each class, side by side."""
    n = len(class_names)
    fig = new_figure(1.15 * n + 0.2, 1.75, left=0.1, right=0.1, bottom=0.05, top=0.55, wspace=0.1)
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, image, name in zip(axes, means, class_names, strict=True):
        ax.imshow(
            image[0].numpy(),
            cmap="magma",
            vmin=0,
            vmax=max(float(image.max()), 1e-6),
            interpolation="bilinear",
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(short_name(name, 10), fontsize=8, pad=2)
    fig.suptitle(f"{dataset}: mean training image per class", fontsize=10)
    return fig


def plot_class_distribution(
    counts: dict[str, torch.Tensor], class_names: Sequence[str], dataset: str
) -> Figure:
    """Images per class in each split (grouped bars), so imbalance is visible at a glance."""
    fig, ax, x = class_bar_figure(list(class_names), 2.9, right=1.5, top=0.4)
    width = 0.8 / max(len(counts), 1)
    colors = {"train": "#4c72b0", "val": "#dd8452", "test": "#55a868"}
    for k, (split, values) in enumerate(counts.items()):
        offset = (k - (len(counts) - 1) / 2) * width
        ax.bar(
            x + offset,
            values.numpy(),
            width,
            label=f"{split} ({int(values.sum()):,})",
            color=colors.get(split),
        )
    ax.set_ylabel("images")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(f"{dataset}: images per class and split", fontsize=10)
    return fig
