"""Send artifact PNGs and summary numbers to the experiment loggers that can show them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

log = logging.getLogger(__name__)


def log_images(trainer: L.Trainer, images: Mapping[str, Path]) -> None:
    """Log each ``{key: png path}`` to W&B (``log_image``) and TensorBoard (``add_image``);
    other loggers (CSV) show no images and are skipped."""
    if not images:
        return
    step = trainer.global_step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            for key, path in images.items():
                logger.log_image(key=key, images=[str(path)], step=step)
        elif isinstance(logger, TensorBoardLogger):
            for key, path in images.items():
                with Image.open(path) as img:
                    array = np.asarray(img.convert("RGB"))
                logger.experiment.add_image(key, array, global_step=step, dataformats="HWC")


def log_scalars(trainer: L.Trainer, scalars: Mapping[str, float]) -> None:
    """Log summary numbers (e.g. ``test/ece``) to every logger, at the current step."""
    finite = {k: float(v) for k, v in scalars.items() if v is not None and np.isfinite(v)}
    if not finite:
        return
    for logger in trainer.loggers:
        logger.log_metrics(finite, step=trainer.global_step)
