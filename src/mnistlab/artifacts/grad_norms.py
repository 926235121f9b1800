"""Per-layer gradient norms over training steps: vanishing and exploding gradients, made visible."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from mnistlab.artifacts.base import Diagnostic
from mnistlab.artifacts.figures import depth_colors, grid_figure, save_figure
from mnistlab.artifacts.layers import (
    layer_label,
    network,
    weight_layers,
)
from mnistlab.errors import (
    positive_int,
)
from mnistlab.files import write_csv, write_json


def layer_grad_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of each Linear/conv layer's weight gradient (layers without a gradient are left out)."""
    layers = [
        (name, m.weight.grad) for name, m in weight_layers(model) if m.weight.grad is not None
    ]
    if not layers:
        return {}
    norms = torch.stack([g.detach().float().norm() for _, g in layers]).tolist()  # one device sync
    return {name: norm for (name, _), norm in zip(layers, norms, strict=True)}


class GradientNorms(Diagnostic):
    """Records :func:`layer_grad_norms` every ``every_n_steps`` optimizer steps.

    Writes ``grad_norms.csv`` (step, epoch in progress (1 = first), one column per layer), ``grad_norms.json``
    (per-layer mean and the first-to-last layer ratio) and ``grad_norms.png``
    (norms over steps, log scale, and the mean norm by depth).
    """

    name = "grad_norms"
    caption = "Weight-gradient norm per layer over training: vanishing and exploding gradients"
    files = ("grad_norms.png", "grad_norms.csv", "grad_norms.json")

    def __init__(self, every_n_steps: int = 10, dirpath: str | None = None) -> None:
        super().__init__(dirpath)
        self.every_n_steps = positive_int(every_n_steps, "callbacks.grad_norms.every_n_steps")
        self.rows: list[dict[str, Any]] = []
        self.labels: dict[str, str] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.labels = {name: layer_label(name, m) for name, m in weight_layers(network(pl_module))}

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip(trainer) or trainer.global_step % self.every_n_steps:
            return
        norms = layer_grad_norms(network(pl_module))
        if norms:
            # epoch: the one in progress, 1 = the first (the lab's one numbering)
            self.rows.append(
                {"step": trainer.global_step, "epoch": trainer.current_epoch + 1, **norms}
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip(trainer) or not self.rows:
            return
        out = self.out_dir(trainer)
        write_csv(out / "grad_norms.csv", self.rows)
        layers = [k for k in self.rows[0] if k not in ("step", "epoch")]
        means = {k: float(np.nanmean([r.get(k, math.nan) for r in self.rows])) for k in layers}
        first, last = means[layers[0]], means[layers[-1]]
        write_json(
            out / "grad_norms.json",
            {
                "every_n_steps": self.every_n_steps,
                "steps_recorded": len(self.rows),
                "mean_grad_norm": means,
                "first_to_last_ratio": first / last if last else None,
            },
        )
        plot_grad_norms(
            self.rows, layers, [self.labels.get(k, k) for k in layers], out / "grad_norms.png"
        )


def plot_grad_norms(
    rows: list[dict[str, Any]], layers: list[str], labels: list[str], path: Path
) -> None:
    fig, (ax_steps, ax_depth) = grid_figure(2, cols=2, size=(6.0, 4.0))
    steps = [r["step"] for r in rows]
    colors = depth_colors(len(layers))
    for layer, label, color in zip(layers, labels, colors, strict=True):
        ax_steps.plot(
            steps, [r.get(layer, math.nan) for r in rows], color=color, label=label, lw=1.2
        )
    ax_steps.set_yscale("log")
    ax_steps.set_xlabel("optimizer step")
    ax_steps.set_ylabel("weight-gradient L2 norm")
    ax_steps.set_title("Gradient norm per layer over training")
    ax_steps.legend(fontsize=7, loc="best")
    means = [np.nanmean([r.get(k, math.nan) for r in rows]) for k in layers]
    ax_depth.bar(range(1, len(layers) + 1), means, color=colors)
    ax_depth.set_yscale("log")
    ax_depth.set_xticks(range(1, len(layers) + 1))
    ax_depth.set_xlabel("layer (1 = input side; last = head)")
    ax_depth.set_ylabel("mean gradient norm")
    ax_depth.set_title("Mean gradient norm by depth")
    save_figure(fig, path)
