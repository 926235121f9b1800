"""Dead ReLU units and saturated tanh/sigmoid units per layer, with activation histograms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from mnistlab.artifacts.base import Diagnostic
from mnistlab.artifacts.figures import depth_colors, grid_figure, save_figure
from mnistlab.artifacts.layers import (
    SPLITS,
    activation_layers,
    network,
    probe_images,
)
from mnistlab.errors import (
    in_range,
    one_of,
    positive_int,
)
from mnistlab.files import write_csv, write_json

#: kinds whose units can die: the pre-activation is <= 0 on every input (no gradient, or 1% of it)
RECTIFIERS = {"relu", "leaky_relu", "gelu", "elu", "selu", "silu"}
#: kinds that saturate, with the output range that maps to [-1, 1]: (offset, scale)
SQUASHERS = {"tanh": (0.0, 1.0), "sigmoid": (0.5, 0.5), "scaled_tanh": (0.0, 1.7159)}
HIST_VALUES = 20_000  # activation values kept per layer for the histogram


@dataclass
class LayerActivations:
    """Statistics of one activation layer on a probe batch.

    ``dead_fraction``: units (channels for conv layers) whose pre-activation is <= 0
    for every probe image (rectifiers only). ``saturated_fraction``: outputs in the
    flat tails, |normalized output| > ``saturation`` (tanh, sigmoid, scaled tanh only).
    ``negative_fraction``: pre-activations <= 0 over all outputs (how sparse the layer is).
    """

    layer: str
    kind: str
    units: int
    dead_fraction: float | None
    saturated_fraction: float | None
    negative_fraction: float
    sample: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "sample"}


def _per_unit(t: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (C, N*...) so that unit = feature (dense) or channel (conv)."""
    return t.transpose(0, 1).reshape(t.shape[1], -1)


@torch.no_grad()
def activation_statistics(
    model: nn.Module, x: torch.Tensor, saturation: float = 0.99
) -> list[LayerActivations]:
    """Run ``model`` on ``x`` (eval mode, restored after) and measure each activation module."""
    found: list[LayerActivations] = []
    generator = torch.Generator().manual_seed(0)

    def hook(name: str, kind: str):
        def measure(
            module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
        ) -> None:
            pre, post = _per_unit(inputs[0].float()), _per_unit(output.float())
            off = pre <= 0
            dead = float(off.all(dim=1).float().mean()) if kind in RECTIFIERS else None
            saturated = None
            if kind in SQUASHERS:
                offset, scale = SQUASHERS[kind]
                saturated = float(((post - offset).abs() / scale > saturation).float().mean())
            flat = post.flatten()
            if flat.numel() > HIST_VALUES:
                flat = flat[
                    torch.randint(flat.numel(), (HIST_VALUES,), generator=generator).to(flat.device)
                ]
            found.append(
                LayerActivations(
                    name,
                    kind,
                    pre.shape[0],
                    dead,
                    saturated,
                    float(off.float().mean()),
                    flat.cpu().numpy(),
                )
            )

        return measure

    handles = [m.register_forward_hook(hook(n, k)) for n, m, k in activation_layers(model)]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return found


class ActivationStats(Diagnostic):
    """Measures :func:`activation_statistics` on fixed validation images, before training and every few epochs.

    Writes ``activation_stats.csv`` (epoch, layer, kind, units, dead_fraction,
    saturated_fraction, negative_fraction; epoch 0 = at initialization, 1 = after the first epoch),
    ``activation_stats.json`` (the last measurement), ``activation_stats.png``
    (dead / saturated fraction per layer over epochs) and ``activation_hist.png``
    (histogram of each layer's outputs, at initialization and at the end).
    """

    name = "activation_stats"
    caption = (
        "Dead ReLU and saturated tanh/sigmoid units per layer over epochs, activation histograms"
    )
    files = (
        "activation_stats.png",
        "activation_hist.png",
        "activation_stats.csv",
        "activation_stats.json",
    )

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 512,
        split: str = "val",
        saturation: float = 0.99,
        dirpath: str | None = None,
    ) -> None:
        super().__init__(dirpath)
        field = "callbacks.activation_stats"
        self.every_n_epochs = positive_int(every_n_epochs, f"{field}.every_n_epochs")
        self.num_samples = positive_int(num_samples, f"{field}.num_samples")
        self.split = one_of(split, f"{field}.split", SPLITS)
        self.saturation = in_range(saturation, f"{field}.saturation", 0.5, 1.0)
        self.history: list[tuple[int, list[LayerActivations]]] = []

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        x, _ = probe_images(trainer, pl_module, self.split, self.num_samples)
        self.history.append((epoch, activation_statistics(network(pl_module), x, self.saturation)))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.history = []
        if not self.skip(trainer):
            self._measure(trainer, pl_module, 0)  # epoch 0: the initialization

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.skip(trainer) and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._measure(trainer, pl_module, trainer.current_epoch + 1)  # the epoch just done

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip(trainer) or not self.history or not self.history[-1][1]:
            return
        out = self.out_dir(trainer)
        write_csv(
            out / "activation_stats.csv",
            [{"epoch": e, **s.row()} for e, stats in self.history for s in stats],
        )
        last_epoch, last = self.history[-1]
        write_json(
            out / "activation_stats.json", {"epoch": last_epoch, "layers": [s.row() for s in last]}
        )
        plot_fractions(self.history, out / "activation_stats.png")
        plot_histograms(self.history[0][1], last, out / "activation_hist.png")


def plot_fractions(history: list[tuple[int, list[LayerActivations]]], path: Path) -> None:
    layers = history[-1][1]
    fig, (ax,) = grid_figure(1, size=(6.5, 4.0))
    epochs = [e for e, _ in history]  # 0 = at initialization
    for i, (layer, color) in enumerate(zip(layers, depth_colors(len(layers)), strict=True)):
        dead = layer.dead_fraction is not None
        values = [
            getattr(stats[i], "dead_fraction" if dead else "saturated_fraction")
            for _, stats in history
        ]
        what = "dead units" if dead else "saturated outputs"
        ax.plot(
            epochs,
            [np.nan if v is None else v for v in values],
            marker="o",
            ms=3,
            color=color,
            label=f"{layer.layer} [{layer.kind}]: {what}",
        )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch (0 = at initialization)")
    ax.set_ylabel("fraction")
    ax.set_title("Dead ReLU units / saturated tanh-sigmoid outputs per layer")
    ax.legend(fontsize=7, loc="best")
    save_figure(fig, path)


def plot_histograms(
    first: list[LayerActivations], last: list[LayerActivations], path: Path
) -> None:
    fig, axes = grid_figure(len(last), cols=4, size=(3.6, 2.8))
    for ax, start, end in zip(axes, first, last, strict=True):
        both = np.concatenate([start.sample, end.sample])
        bins = (
            np.histogram_bin_edges(both[np.isfinite(both)], bins=50)
            if np.isfinite(both).any()
            else 50
        )
        ax.hist(end.sample, bins=bins, color="C0", alpha=0.6, label="end", density=True)
        ax.hist(
            start.sample,
            bins=bins,
            color="black",
            histtype="step",
            lw=1.0,
            label="init",
            density=True,
        )
        stat = (
            f"dead {end.dead_fraction:.0%}"
            if end.dead_fraction is not None
            else f"saturated {end.saturated_fraction:.0%}"
            if end.saturated_fraction is not None
            else ""
        )
        ax.set_title(f"{end.layer} [{end.kind}] {stat}", fontsize=8)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle("Activation histograms per layer (density, log scale): init vs end of training")
    save_figure(fig, path)
