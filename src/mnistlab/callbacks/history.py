"""Per-epoch history of every logged epoch metric, written as CSV after each epoch."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from mnistlab.files import write_csv


class EpochHistory(L.Callback):
    """Rows of ``epoch, lr, epoch_time_s, train/*, val/*`` in ``<dir>/history.csv``.

    ``epoch`` counts completed epochs, 1..n (the lab's one numbering: 0 is the
    initialization, epoch *k* is the model after *k* passes over the data), so it equals
    Lightning's ``current_epoch + 1`` and ``metrics.json``'s ``best_epoch`` is one of them.

    A row is complete only after the module's own epoch-end hook has logged the
    train metrics, which Lightning runs after the callbacks' hook; so the row of
    epoch *k* is written when epoch *k + 1* starts, and the last one when training ends.
    The file is rewritten each epoch, so a crash keeps the epochs already done. The rows are
    also saved in checkpoints, so a resumed run's history holds every epoch once.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.path = Path(dirpath) / "history.csv"
        self.rows: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None
        self._epoch_start = 0.0
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        """The rows up to the checkpoint. A checkpoint saved at the end of an epoch (after the
        module logged the epoch's train metrics) completes that epoch's pending row."""
        rows = [dict(r) for r in self.rows]
        trainer = self._trainer
        if self._pending is not None and trainer is not None and trainer.fit_loop.epoch_loop.done:
            row = dict(self._pending)
            row["epoch_time_s"] = round(time.perf_counter() - self._epoch_start, 4)
            row.update(self._epoch_metrics(trainer))
            rows.append(row)
        return {"rows": rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Rows of a checkpoint a fit resumes from. Lightning also restores callbacks when it
        tests a checkpoint (best.ckpt): the history of the whole run stays then."""
        trainer = self._trainer
        if trainer is not None and trainer.state.fn != TrainerFn.FITTING:
            return
        self.rows = [dict(r) for r in state_dict.get("rows", [])]
        self._pending = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        self._pending = {"epoch": trainer.current_epoch + 1, "lr": lr}
        self._epoch_start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    def _flush(self, trainer: L.Trainer) -> None:
        if self._pending is None:
            return
        row = self._pending
        row["epoch_time_s"] = round(time.perf_counter() - self._epoch_start, 4)
        row.update(self._epoch_metrics(trainer))
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        self._pending = None
        if trainer.is_global_zero:
            self.write()

    @staticmethod
    def _epoch_metrics(trainer: L.Trainer) -> dict[str, float]:
        return {
            key: float(value)
            for key, value in sorted(trainer.callback_metrics.items())
            if key.startswith(("train/", "val/"))
        }

    def write(self) -> None:
        """Rewrite ``history.csv`` atomically (a kill never leaves half a file)."""
        write_csv(self.path, self.rows)

    def best_epoch(self, monitor: str = "val/acc") -> int | None:
        """First epoch (1..n) with the highest ``monitor`` (None before any validation)."""
        scored = [
            (r[monitor], -r["epoch"])
            for r in self.rows
            if monitor in r and not math.isnan(r[monitor])
        ]
        return -max(scored)[1] if scored else None

    def best_value(self, monitor: str = "val/acc") -> float:
        """The highest ``monitor`` over the epochs (NaN before any validation)."""
        values = [r[monitor] for r in self.rows if monitor in r and not math.isnan(r[monitor])]
        return max(values) if values else math.nan
