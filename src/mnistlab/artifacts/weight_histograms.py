"""Weight histograms per layer, at initialization and as training goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from mnistlab.artifacts.figures import grid_figure, save_figure
from mnistlab.artifacts.layers import (
    layer_label,
    network,
    weight_layers,
)
from mnistlab.artifacts.trained_models import ModelDiagnostic, ModelState
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
    """A copy of (up to ``HIST_VALUES`` of) the weights: a view of a small CPU layer's weights
    would change as training updates them in place."""
    flat = w.detach().float().flatten().cpu()
    if flat.numel() > HIST_VALUES:
        flat = flat[torch.randint(flat.numel(), (HIST_VALUES,), generator=generator)]
    return flat.numpy().copy()


class WeightHistograms(ModelDiagnostic):
    """Snapshots every layer's weights at the start, every ``every_n_epochs`` epochs (0: never)
    and for the trained models: ``best`` (the checkpoint the test metrics use) and ``end``.

    Writes ``weight_stats.csv`` (snapshot, epoch, layer and :func:`weight_statistics`;
    snapshots ``init`` (epoch 0), ``epoch<k>``, ``best`` and ``end``, the last two with the
    same numbers when the best checkpoint is the last epoch) and ``weight_hist.png`` (one
    panel per layer: initialization, best and, when it differs, end).
    """

    name = "weight_histograms"
    caption = "Weight histograms and statistics per layer, at init, as training goes, best and end"
    files = ("weight_hist.png", "weight_stats.csv")

    def __init__(self, every_n_epochs: int = 0, dirpath: str | None = None) -> None:
        super().__init__(dirpath)
        self.every_n_epochs = whole_number(
            every_n_epochs, "callbacks.weight_histograms.every_n_epochs", minimum=0
        )
        self.rows: list[dict[str, Any]] = []
        self.init: dict[str, np.ndarray] = {}
        self.labels: dict[str, str] = {}

    def _snapshot(self, model: nn.Module, name: str, epoch: int) -> dict[str, np.ndarray]:
        """Record the statistics rows of ``model``; return a sample of each layer's weights."""
        for layer, stats in weight_statistics(model).items():
            self.rows.append({"snapshot": name, "epoch": epoch, "layer": layer, **stats})
        generator = torch.Generator().manual_seed(0)
        return {n: _sample(m.weight, generator) for n, m in weight_layers(model)}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows, self.init = [], {}
        if not self.skip(trainer):
            model = network(pl_module)
            self.labels = {n: layer_label(n, m) for n, m in weight_layers(model)}
            self.init = self._snapshot(model, "init", 0)  # epoch 0: the initialization

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        n = self.every_n_epochs
        epoch = trainer.current_epoch + 1  # the epoch just done, 1 = the first
        if not self.skip(trainer) and n and epoch % n == 0:
            self._snapshot(network(pl_module), f"epoch{epoch}", epoch)

    def describe(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        models: list[tuple[ModelState, nn.Module]],
    ) -> None:
        if not self.init:
            return
        samples = []
        for state, model in models:
            samples.append((state, self._snapshot(model, state.name, state.epoch)))
            if state.is_end:  # one model, listed under both names
                self._snapshot(model, "end", state.epoch)
        out = self.out_dir(trainer)
        write_csv(out / "weight_stats.csv", self.rows)
        plot_weight_histograms(self.init, samples, self.labels, out / "weight_hist.png")


def plot_weight_histograms(
    init: dict[str, np.ndarray],
    trained: list[tuple[ModelState, dict[str, np.ndarray]]],
    labels: dict[str, str],
    path: Path,
) -> None:
    """One panel per layer: the initialization (outline) and each trained model."""
    fig, axes = grid_figure(len(init), cols=4, size=(3.6, 2.8))
    tested = next(sample for state, sample in trained if state.tested)
    for ax, name in zip(axes, init, strict=True):
        both = np.concatenate([init[name], *[sample[name] for _, sample in trained]])
        finite = both[np.isfinite(both)]
        bins = np.histogram_bin_edges(finite, bins=60) if finite.size and np.ptp(finite) > 0 else 60
        for state, sample in trained:
            style = {"alpha": 0.6} if state.tested else {"histtype": "step", "lw": 1.2}
            ax.hist(sample[name], bins=bins, color="C1" if state.tested else "C0",
                    label=state.label, **style)  # fmt: skip
        ax.hist(
            init[name], bins=bins, color="black", histtype="step", lw=1.0, label="init (epoch 0)"
        )
        ax.set_title(
            f"{labels.get(name, name)}\nstd {np.std(init[name]):.3g} -> {np.std(tested[name]):.3g}",
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    label = next(state.label for state, _ in trained if state.tested)
    fig.suptitle(f"Weight histograms per layer: initialization vs {label} (the tested model)")
    save_figure(fig, path)
