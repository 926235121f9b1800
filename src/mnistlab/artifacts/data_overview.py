"""Data set overview (samples per class, class distribution, mean images), drawn once and cached."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from mnistlab.artifacts.base import Artifact
from mnistlab.artifacts.figures import (
    class_bar_figure,
    new_figure,
    save_figure,
    short_name,
    tick_room,
)
from mnistlab.errors import positive_int
from mnistlab.files import write_json


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


log = logging.getLogger(__name__)

FILES = (
    "data_samples.png",
    "data_class_distribution.png",
    "data_mean_images.png",
    "data_overview.json",
)
#: bump when the figures change, so old caches are not reused
VERSION = 2


class DataOverview(Artifact):
    """Copies ``data_samples.png``, ``data_class_distribution.png``, ``data_mean_images.png`` and
    ``data_overview.json`` (counts per class and split) into the artifact folder.

    They depend only on the data set and its split, so they are drawn once per
    (data set, val_size, split_seed, train_size) into ``cache_dir`` and copied afterwards.

    Args:
        dirpath: artifact folder.
        cache_dir: where drawn overviews are kept; null draws every run.
        samples_per_class: images per class in the samples grid.
        log_to_loggers: also send the PNGs to W&B / TensorBoard.
    """

    name = "data_overview"
    caption = "What the data looks like: samples per class, class counts per split, mean images"
    kind = "training"
    files = FILES

    def __init__(
        self,
        dirpath: str | Path | None = None,
        cache_dir: str | Path | None = None,
        samples_per_class: int = 12,
        log_to_loggers: bool = True,
    ) -> None:
        super().__init__(dirpath, log_to_loggers)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.samples_per_class = positive_int(
            samples_per_class, "callbacks.data_overview.samples_per_class"
        )
        self.done = False
        self.cache_hit: bool | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.done or self.skip(trainer):
            return
        self.done = True
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "split"):
            log.warning(
                "callbacks.data_overview: the run has no mnistlab data module; no overview drawn"
            )
            return
        self.out_dir(trainer)
        self.write(datamodule)
        self.figures = {
            f"artifacts/{Path(f).stem}": self.dirpath / f for f in FILES if f.endswith(".png")
        }
        self.send_figures(trainer)

    def key(self, datamodule: Any) -> str:
        """Cache folder name: data set plus a hash of what changes the figures."""
        what = {
            "dataset": datamodule.name,
            "val_count": getattr(datamodule, "val_count", None),
            "split_seed": getattr(datamodule, "split_seed", None),
            "train_size": getattr(datamodule, "train_size", None),
            "samples_per_class": self.samples_per_class,
            "version": VERSION,
        }
        digest = hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]
        return f"{datamodule.name}-{digest}"

    def write(self, datamodule: Any) -> Path:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        if self.cache_dir is None:
            self.cache_hit = False
            self.draw(datamodule, self.dirpath)
            return self.dirpath
        cached = self.cache_dir / "data_overview" / self.key(datamodule)
        self.cache_hit = all((cached / f).is_file() for f in FILES)
        if not self.cache_hit:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".tmp-"))
                self.draw(datamodule, tmp)
                if cached.exists():  # another run drew it meanwhile
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    os.replace(tmp, cached)
            except OSError as err:
                log.warning(
                    "callbacks.data_overview: cannot cache in %s (%s); drawing into the run only",
                    self.cache_dir,
                    err,
                )
                self.draw(datamodule, self.dirpath)
                return self.dirpath
        for f in FILES:
            shutil.copyfile(cached / f, self.dirpath / f)
        return cached

    def draw(self, datamodule: Any, folder: Path) -> None:
        names = list(datamodule.class_names)
        n = len(names)
        images, labels = (t.cpu() for t in datamodule.split("train"))
        counts = {
            s: torch.bincount(datamodule.split(s)[1].cpu(), minlength=n)
            for s in ("train", "val", "test")
        }
        tiles = samples_per_class(images, labels, n, self.samples_per_class)
        save_figure(
            plot_samples(tiles, names, self.samples_per_class, datamodule.name),
            folder / "data_samples.png",
        )
        save_figure(
            plot_class_distribution(counts, names, datamodule.name),
            folder / "data_class_distribution.png",
        )
        save_figure(
            plot_mean_images(mean_images(images, labels, n), names, datamodule.name),
            folder / "data_mean_images.png",
        )
        write_json(
            folder / "data_overview.json",
            {
                "dataset": datamodule.name,
                "class_names": names,
                "counts": {s: c.tolist() for s, c in counts.items()},
                "image_shape": list(images.shape[1:]),
            },
        )
