"""Data set overview (samples per class, class distribution, mean images), drawn once and cached."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch

from mnistlab.callbacks.evaluation import skip_artifacts
from mnistlab.callbacks.logging_images import log_images
from mnistlab.errors import ConfigError
from mnistlab.utils import write_json
from mnistlab.viz.data_overview import (
    mean_images,
    plot_class_distribution,
    plot_mean_images,
    plot_samples,
    samples_per_class,
)
from mnistlab.viz.figures import save_figure

log = logging.getLogger(__name__)

FILES = (
    "data_samples.png",
    "data_class_distribution.png",
    "data_mean_images.png",
    "data_overview.json",
)
#: bump when the figures change, so old caches are not reused
VERSION = 2


class DataOverview(L.Callback):
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

    def __init__(
        self,
        dirpath: str | Path,
        cache_dir: str | Path | None = None,
        samples_per_class: int = 12,
        log_to_loggers: bool = True,
    ) -> None:
        if (
            isinstance(samples_per_class, bool)
            or not isinstance(samples_per_class, int)
            or samples_per_class < 1
        ):
            raise ConfigError(
                f"callbacks.data_overview.samples_per_class={samples_per_class!r} must be a whole number >= 1"
            )
        self.dirpath = Path(dirpath)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.samples_per_class = samples_per_class
        self.log_to_loggers = log_to_loggers
        self.done = False
        self.cache_hit: bool | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.done or skip_artifacts(trainer) or not trainer.is_global_zero:
            return
        self.done = True
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "split"):
            log.warning(
                "callbacks.data_overview: the run has no mnistlab data module; no overview drawn"
            )
            return
        self.write(datamodule)
        if self.log_to_loggers:
            log_images(
                trainer,
                {
                    f"artifacts/{Path(f).stem}": self.dirpath / f
                    for f in FILES
                    if f.endswith(".png")
                },
            )

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
