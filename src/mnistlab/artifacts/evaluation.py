"""Collect the test set's predictions once, gathered across ranks, and hand them to the artifact callbacks.

Every test-set artifact (confusion matrix, ROC, Grad-CAM, ...) is an
:class:`TestSetArtifact` callback. They need the same logits, so one
:class:`Evaluation` callback collects them during ``trainer.test``,
gathers them from all ranks, and on rank zero calls each writer in turn.

:func:`attach_writers` hands the writers to the :class:`Evaluation` callback
instead of the Trainer: Lightning calls every hook of every callback on every
training step, and ten idle writers cost a small model ~5% of its step time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch

from mnistlab.artifacts.base import Artifact
from mnistlab.artifacts.to_loggers import log_scalars
from mnistlab.errors import ConfigError
from mnistlab.files import write_json

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """The whole test run on CPU: one row per distinct test image, in test-split order."""

    logits: torch.Tensor  # (N, C) float32
    labels: torch.Tensor  # (N,) int64
    indices: torch.Tensor  # (N,) positions in the data module's test split
    class_names: list[str]
    images: torch.Tensor | None = None  # (N, 1, H, W) uint8, when the data module exposes them
    dataset: str = ""

    @cached_property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(dim=1)

    @cached_property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)

    @cached_property
    def confidence(self) -> torch.Tensor:
        return self.probs.max(dim=1).values

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class TestSetArtifact(Artifact):
    """Base of the artifacts drawn from the gathered test predictions.

    Subclasses implement :meth:`write`; :class:`Evaluation` calls it on rank zero after
    the test epoch. PNGs saved with :meth:`save_figure` are also sent to W&B/TensorBoard.
    """

    kind = "test"
    needs_images: ClassVar[bool] = False
    __test__ = False  # not a pytest test class, despite its name

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not any(isinstance(cb, Evaluation) for cb in trainer.callbacks):
            raise ConfigError(
                f"callbacks.{self.name} draws the test predictions that callbacks.evaluation collects, "
                f"but that callback is off; put it back, or also switch off callbacks.{self.name}"
            )

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        """Write this artifact's files; return summary numbers to log (e.g. ``test/ece``)."""
        raise NotImplementedError


class Evaluation(L.Callback):
    """Collects test logits/labels, gathers them across ranks and drives the :class:`TestSetArtifact` s.

    Args:
        dirpath: artifact folder; ``summary.json`` there lists each writer's numbers and seconds.
        log_to_loggers: also send the PNGs and numbers to W&B / TensorBoard when they are active.
    """

    def __init__(self, dirpath: str | Path, log_to_loggers: bool = True) -> None:
        self.dirpath = Path(dirpath)
        self.log_to_loggers = log_to_loggers
        #: writers handed over by :func:`attach_writers` (writers on the Trainer are used too)
        self.writers: list[TestSetArtifact] = []
        self._logits: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._order: torch.Tensor | None = None
        self.result: Predictions | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for writer in self.writers:  # their checks (e.g. a Grad-CAM layer name) run before training
            writer.setup(trainer, pl_module, stage)

    # --- collect ----------------------------------------------------------------------------
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._logits, self._labels = [], []
        loader = trainer.test_dataloaders
        loader = loader[0] if isinstance(loader, (list, tuple)) else loader
        # InMemoryBatches knows which test images this rank sees (in order); others are read in order
        indices = getattr(loader, "indices", None)
        self._order = (
            indices(0) if callable(indices) and not getattr(loader, "shuffle", False) else None
        )

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if dataloader_idx != 0:
            return
        if not isinstance(outputs, dict) or "logits" not in outputs or "labels" not in outputs:
            raise ConfigError(
                f"callbacks.evaluation needs {type(pl_module).__name__}.test_step to return "
                "{'logits': ..., 'labels': ...}; switch the test-set artifact callbacks off for this module"
            )
        self._logits.append(outputs["logits"].detach().float())
        self._labels.append(outputs["labels"].detach())

    def _gather(self, pl_module: L.LightningModule, x: torch.Tensor) -> torch.Tensor:
        """Concatenate ``x`` from all ranks in rank order (ranks may hold different counts)."""
        world = pl_module.trainer.world_size
        if world == 1:
            return x
        sizes = pl_module.all_gather(torch.tensor([len(x)], device=x.device)).flatten().tolist()
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[: len(x)] = x
        gathered = pl_module.all_gather(padded)
        return torch.cat([gathered[r, : sizes[r]] for r in range(world)])

    def _positions(self, trainer: L.Trainer, count: int, device: torch.device) -> torch.Tensor:
        """Test-split index of each of this rank's ``count`` predictions."""
        if self._order is not None and len(self._order) >= count:
            return self._order[:count].to(device)
        # a loader without .indices: sequential, or DistributedSampler's strided shards under DDP
        return torch.arange(count, device=device) * trainer.world_size + trainer.global_rank

    # --- hand over --------------------------------------------------------------------------
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # every rank takes part in the gather; only rank zero writes (below)
        if trainer.sanity_checking or trainer.fast_dev_run or not self._logits:
            return
        logits = torch.cat(self._logits)
        labels = torch.cat(self._labels)
        positions = self._positions(trainer, len(labels), labels.device)
        logits = self._gather(pl_module, logits).cpu()
        labels = self._gather(pl_module, labels).cpu()
        positions = self._gather(pl_module, positions).cpu()
        self._logits, self._labels = [], []
        if not trainer.is_global_zero:
            return
        self.result = self._predictions(trainer, pl_module, logits, labels, positions)
        self.run_writers(trainer, pl_module, self.result)

    def _predictions(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        logits: torch.Tensor,
        labels: torch.Tensor,
        positions: torch.Tensor,
    ) -> Predictions:
        datamodule = trainer.datamodule
        split = (
            datamodule.split("test")
            if datamodule is not None and hasattr(datamodule, "split")
            else None
        )
        if split is not None and len(positions) and int(positions.max()) >= len(split[1]):
            positions = positions % len(split[1])  # DistributedSampler pads by wrapping around
        # padded shards repeat a few images: keep the first copy of each, in test-split order
        order = torch.argsort(positions, stable=True)
        positions, logits, labels = positions[order], logits[order], labels[order]
        keep = torch.ones_like(positions, dtype=torch.bool)
        keep[1:] = positions[1:] != positions[:-1]
        positions, logits, labels = positions[keep], logits[keep], labels[keep]
        images = None
        if split is not None:
            split_images, split_labels = split
            if torch.equal(split_labels[positions.to(split_labels.device)].cpu(), labels):
                images = split_images[positions.to(split_images.device)].cpu()
            else:
                log.warning(
                    "test predictions do not line up with the data module's test split; "
                    "image artifacts (Grad-CAM, galleries) are skipped"
                )
        class_names = list(
            getattr(pl_module, "class_names", None) or getattr(datamodule, "class_names", [])
        )
        if len(class_names) != logits.shape[1]:
            class_names = [str(i) for i in range(logits.shape[1])]
        return Predictions(
            logits=logits,
            labels=labels,
            indices=positions,
            class_names=class_names,
            images=images,
            dataset=str(getattr(datamodule, "name", "")),
        )

    def run_writers(
        self, trainer: L.Trainer, pl_module: L.LightningModule, result: Predictions
    ) -> None:
        """Call every attached writer and every :class:`TestSetArtifact` callback of ``trainer``."""
        on_trainer = [cb for cb in trainer.callbacks if isinstance(cb, TestSetArtifact)]
        writers = [*self.writers, *(w for w in on_trainer if w not in self.writers)]
        summary: dict[str, Any] = {"test_images": len(result.labels), "seconds": {}}
        scalars: dict[str, float] = {}
        start = time.perf_counter()
        for writer in writers:
            if writer.needs_images and result.images is None:
                log.warning("callbacks.%s skipped: the test images are not available", writer.name)
                continue
            t0 = time.perf_counter()
            writer.figures = {}
            writer.out_dir(trainer)
            try:
                numbers = writer.write(result, pl_module) or {}
            except Exception as err:  # a broken picture must not cost the trained run its metrics
                log.exception(
                    "callbacks.%s failed; the other artifacts and the run go on", writer.name
                )
                summary.setdefault("failed", {})[writer.name] = f"{type(err).__name__}: {err}"
                continue
            summary["seconds"][writer.name] = round(time.perf_counter() - t0, 3)
            scalars.update(numbers)
            if self.log_to_loggers:
                writer.send_figures(trainer)
        summary.update(scalars)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        write_json(self.dirpath / "summary.json", summary)
        if self.log_to_loggers:
            log_scalars(trainer, scalars)
        log.info(
            "test-set artifacts in %s (%.1f s: %s)",
            self.dirpath,
            time.perf_counter() - start,
            ", ".join(f"{k} {v:.2f}" for k, v in summary["seconds"].items()),
        )


def attach_writers(callbacks: list[L.Callback]) -> list[L.Callback]:
    """``callbacks`` with the artifact writers moved into the :class:`Evaluation` callback.

    The writers act once, after the test epoch; on the Trainer they would still receive
    every per-batch hook call. Without an :class:`Evaluation` callback the list is returned
    unchanged, so each writer's ``setup`` refuses the run with its fix.
    """
    collector = next((cb for cb in callbacks if isinstance(cb, Evaluation)), None)
    if collector is None:
        return list(callbacks)
    collector.writers.extend(cb for cb in callbacks if isinstance(cb, TestSetArtifact))
    return [cb for cb in callbacks if not isinstance(cb, TestSetArtifact)]
