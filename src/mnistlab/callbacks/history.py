"""Per-epoch history of every logged epoch metric, written as CSV after each epoch."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import lightning as L


class EpochHistory(L.Callback):
    """Rows of ``epoch, lr, epoch_time_s, train/*, val/*`` in ``<dir>/history.csv``.

    ``epoch`` counts completed epochs, 1..n (the lab's one numbering: 0 is the
    initialization, epoch *k* is the model after *k* passes over the data), so it equals
    Lightning's ``current_epoch + 1`` and ``metrics.json``'s ``best_epoch`` is one of them.

    A row is complete only after the module's own epoch-end hook has logged the
    train metrics, which Lightning runs after the callbacks' hook; so the row of
    epoch *k* is written when epoch *k + 1* starts, and the last one when training ends.
    The file is rewritten each epoch, so a crash keeps the epochs already done.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.path = Path(dirpath) / "history.csv"
        self.rows: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None
        self._epoch_start = 0.0

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
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(("train/", "val/")):
                row[key] = float(value)
        self.rows.append(row)
        self._pending = None
        if trainer.is_global_zero:
            self.write()

    def write(self) -> None:
        fields: list[str] = []
        for row in self.rows:
            fields += [k for k in row if k not in fields]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)

    def best_epoch(self, monitor: str = "val/acc") -> int | None:
        """First epoch (1..n) with the highest ``monitor`` (None before any validation)."""
        scored = [
            (r[monitor], -r["epoch"])
            for r in self.rows
            if monitor in r and not math.isnan(r[monitor])
        ]
        return -max(scored)[1] if scored else None
