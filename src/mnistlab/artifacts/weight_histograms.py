"""Weight histograms per layer, at initialization and as training goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from mnistlab.artifacts.base import Diagnostic
from mnistlab.artifacts.figures import grid_figure, save_figure
from mnistlab.artifacts.layers import (
    layer_label,
    network,
    weight_layers,
)
from mnistlab.errors import (
    whole_number,
)
from mnistlab.files import write_csv

HIST_VALUES = 50_000  # weights kept per layer and snapshot for the histogram


@torch.no_grad()
def weight_statistics(model: nn.Module, near_zero: float = 1e-3) -> dict[str, dict[str, float]]:
    """Per Linear/conv layer: numel, mean, std, mean |w|, min, max, fraction with |w| < ``near_zero``."""
    stats = {}
    for name, module in weight_layers(model):
        w = module.weight.detach().float()
        stats[name] = {
            "numel": w.numel(),
            "mean": float(w.mean()),
            "std": float(w.std()) if w.numel() > 1 else 0.0,
            "abs_mean": float(w.abs().mean()),
            "min": float(w.min()),
            "max": float(w.max()),
            "near_zero_fraction": float((w.abs() < near_zero).float().mean()),
        }
    return stats


def _sample(w: torch.Tensor, generator: torch.Generator) -> np.ndarray:
    flat = w.detach().float().flatten().cpu()
    if flat.numel() > HIST_VALUES:
        flat = flat[torch.randint(flat.numel(), (HIST_VALUES,), generator=generator)]
    return flat.numpy()


class WeightHistograms(Diagnostic):
    """Snapshots every layer's weights at the start, every ``every_n_epochs`` epochs (0: never) and the end.

    Writes ``weight_stats.csv`` (snapshot, epoch, layer and :func:`weight_statistics`)
    and ``weight_hist.png`` (one panel per layer, initialization vs end).
    """

    name = "weight_histograms"
    caption = "Weight histograms and statistics per layer, at init and as training goes"
    files = ("weight_hist.png", "weight_stats.csv")

    def __init__(self, every_n_epochs: int = 0, dirpath: str | None = None) -> None:
        super().__init__(dirpath)
        self.every_n_epochs = whole_number(
            every_n_epochs, "callbacks.weight_histograms.every_n_epochs", minimum=0
        )
        self.rows: list[dict[str, Any]] = []
        self.samples: dict[str, dict[str, np.ndarray]] = {}
        self.labels: dict[str, str] = {}

    def _snapshot(self, pl_module: L.LightningModule, name: str, epoch: int) -> None:
        model = network(pl_module)
        for layer, stats in weight_statistics(model).items():
            self.rows.append({"snapshot": name, "epoch": epoch, "layer": layer, **stats})
        generator = torch.Generator().manual_seed(0)
        self.samples[name] = {n: _sample(m.weight, generator) for n, m in weight_layers(model)}
        self.labels = {n: layer_label(n, m) for n, m in weight_layers(model)}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows, self.samples = [], {}
        if not self.skip(trainer):
            self._snapshot(pl_module, "init", 0)  # epoch 0: the initialization

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        n = self.every_n_epochs
        if not self.skip(trainer) and n and (trainer.current_epoch + 1) % n == 0:
            epoch = trainer.current_epoch + 1  # the epoch just done, 1 = the first
            self._snapshot(pl_module, f"epoch{epoch}", epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip(trainer) or "init" not in self.samples:
            return
        self._snapshot(pl_module, "end", trainer.current_epoch)  # = epochs completed by now
        out = self.out_dir(trainer)
        write_csv(out / "weight_stats.csv", self.rows)
        plot_weight_histograms(
            self.samples["init"], self.samples["end"], self.labels, out / "weight_hist.png"
        )


def plot_weight_histograms(
    init: dict[str, np.ndarray], end: dict[str, np.ndarray], labels: dict[str, str], path: Path
) -> None:
    fig, axes = grid_figure(len(end), cols=4, size=(3.6, 2.8))
    for ax, name in zip(axes, end, strict=True):
        both = np.concatenate([init[name], end[name]])
        finite = both[np.isfinite(both)]
        bins = np.histogram_bin_edges(finite, bins=60) if finite.size and np.ptp(finite) > 0 else 60
        ax.hist(end[name], bins=bins, color="C1", alpha=0.6, label="end")
        ax.hist(init[name], bins=bins, color="black", histtype="step", lw=1.0, label="init")
        ax.set_title(
            f"{labels.get(name, name)}\nstd {np.std(init[name]):.3g} -> {np.std(end[name]):.3g}",
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle("Weight histograms per layer: initialization vs end of training")
    save_figure(fig, path)
