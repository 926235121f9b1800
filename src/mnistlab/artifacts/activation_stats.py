"""Dead ReLU units and saturated tanh/sigmoid units per layer, with activation histograms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from torch import nn

from mnistlab.artifacts.figures import depth_colors, grid_figure, save_figure
from mnistlab.artifacts.layers import (
    SPLITS,
    activation_layers,
    network,
    probe_images,
)
from mnistlab.artifacts.trained_models import ModelDiagnostic, ModelState, by_name
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


class ActivationStats(ModelDiagnostic):
    """Measures :func:`activation_statistics` on fixed validation images, before training and every few epochs.

    Writes ``activation_stats.csv`` (epoch, layer, kind, units, dead_fraction,
    saturated_fraction, negative_fraction; epoch 0 = at initialization, 1 = after the first
    epoch), ``activation_stats.json`` (``init`` and the trained models: ``best``, the
    checkpoint the test metrics use, and ``end``, each with its epoch), ``activation_stats.png``
    (dead / saturated fraction per layer over epochs, the best epoch marked) and
    ``activation_hist.png`` (histogram of each layer's outputs at initialization, best, end).
    """

    name = "activation_stats"
    caption = (
        "Dead ReLU and saturated tanh/sigmoid units per layer over epochs, at init, best "
        "checkpoint and end; activation histograms"
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

    def _measure(
        self, trainer: L.Trainer, pl_module: L.LightningModule, model: nn.Module | None = None
    ) -> list[LayerActivations]:
        x, _ = probe_images(trainer, pl_module, self.split, self.num_samples)
        return activation_statistics(
            network(pl_module) if model is None else model, x, self.saturation
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.history = []
        if not self.skip(trainer):
            self.history.append((0, self._measure(trainer, pl_module)))  # 0: initialization

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1  # the epoch just done, 1 = the first
        if not self.skip(trainer) and epoch % self.every_n_epochs == 0:
            self.history.append((epoch, self._measure(trainer, pl_module)))

    def describe(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        models: list[tuple[ModelState, nn.Module]],
    ) -> None:
        if not self.history or not self.history[0][1]:
            return
        out = self.out_dir(trainer)
        write_csv(
            out / "activation_stats.csv",
            [{"epoch": e, **s.row()} for e, stats in self.history for s in stats],
        )
        trained = [(state, self._measure(trainer, pl_module, net)) for state, net in models]
        init = self.history[0][1]
        write_json(
            out / "activation_stats.json",
            {
                "init": {"epoch": 0, "label": "init (epoch 0)", "layers": [s.row() for s in init]},
                **by_name(
                    [(state, {"layers": [s.row() for s in stats]}) for state, stats in trained]
                ),
            },
        )
        plot_fractions(self.history, trained, out / "activation_stats.png")
        plot_histograms(init, trained, out / "activation_hist.png")


def _fraction(layer: LayerActivations) -> float | None:
    return layer.dead_fraction if layer.dead_fraction is not None else layer.saturated_fraction


def plot_fractions(
    history: list[tuple[int, list[LayerActivations]]],
    trained: list[tuple[ModelState, list[LayerActivations]]],
    path: Path,
) -> None:
    """Dead / saturated fraction per layer over epochs; the tested checkpoint's epoch marked."""
    layers = history[-1][1]
    fig, (ax,) = grid_figure(1, size=(6.5, 4.0))
    epochs = [e for e, _ in history]  # 0 = at initialization
    for i, (layer, color) in enumerate(zip(layers, depth_colors(len(layers)), strict=True)):
        values = [_fraction(stats[i]) for _, stats in history]
        what = "dead units" if layer.dead_fraction is not None else "saturated outputs"
        ax.plot(
            epochs,
            [np.nan if v is None else v for v in values],
            marker="o",
            ms=3,
            color=color,
            label=f"{layer.layer} [{layer.kind}]: {what}",
        )
    for state, _ in trained:
        if state.tested:
            ax.axvline(state.epoch, color="black", ls="--", lw=0.9)
            ax.text(state.epoch, 0.02, f" {state.label}: tested", fontsize=7, va="bottom")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch (0 = at initialization)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("fraction")
    ax.set_title("Dead ReLU units / saturated tanh-sigmoid outputs per layer")
    ax.legend(fontsize=7, loc="center right")
    save_figure(fig, path)


#: how each model's histogram is drawn: filled for the tested one, outlines for the others
HIST_STYLES = {
    "init": {"color": "black", "histtype": "step", "lw": 1.0},
    "tested": {"color": "C0", "alpha": 0.6},
    "other": {"color": "C1", "histtype": "step", "lw": 1.2},
}


def plot_histograms(
    init: list[LayerActivations],
    trained: list[tuple[ModelState, list[LayerActivations]]],
    path: Path,
) -> None:
    """Each layer's output histogram at initialization and for each trained model."""
    fig, axes = grid_figure(len(init), cols=4, size=(3.6, 2.8))
    tested = next(stats for state, stats in trained if state.tested)
    for i, ax in enumerate(axes):
        both = np.concatenate([init[i].sample, *[stats[i].sample for _, stats in trained]])
        finite = both[np.isfinite(both)]
        bins = np.histogram_bin_edges(finite, bins=50) if finite.size else 50
        for label, name, layer in [
            ("init (epoch 0)", "init", init[i]),
            *[(s.label, "tested" if s.tested else "other", stats[i]) for s, stats in trained],
        ]:
            ax.hist(layer.sample, bins=bins, density=True, label=label, **HIST_STYLES[name])
        what = "dead" if tested[i].dead_fraction is not None else "saturated"
        value = _fraction(tested[i])
        stat = "" if value is None else f" {what} {value:.1%}"
        ax.set_title(f"{tested[i].layer} [{tested[i].kind}]{stat}", fontsize=8)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    label = next(state.label for state, _ in trained if state.tested)
    fig.suptitle(f"Layer outputs (density, log scale); % in titles: {label}, tested", fontsize=9)
    save_figure(fig, path)
