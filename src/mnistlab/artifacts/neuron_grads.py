"""Per-neuron gradient traces over the first iterations: symmetric (zero) init shows as one line."""

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
    positive_int,
)
from mnistlab.files import write_csv, write_json


def unit_grad_norms(layer: nn.Module) -> torch.Tensor:
    """L2 norm of each output unit's incoming-weight gradient (row of a Linear, filter of a conv)."""
    grad = layer.weight.grad
    if grad is None:
        return torch.zeros(layer.weight.shape[0])
    return grad.detach().float().flatten(1).norm(dim=1)


def relative_spread(values: np.ndarray) -> float:
    """``(max - min) / mean`` across units; 0 when every unit gets the same gradient."""
    mean = float(np.mean(np.abs(values)))
    return float((values.max() - values.min()) / mean) if mean > 0 else 0.0


class NeuronGradientTrace(Diagnostic):
    """Gradient norm of each of the first ``max_units`` units of the hidden layers, step by step.

    Traces the first ``num_steps`` optimizer steps of the first ``max_layers`` hidden
    weight layers (the head is left out). Writes ``neuron_grads.csv`` (step, epoch in
    progress (1 = the first), layer, unit, grad_norm), ``neuron_grads.json`` (the epochs the
    traced steps fall in and, per layer, the largest relative spread across units and
    whether all units got identical gradients at every traced step) and
    ``neuron_grads.png`` (one line per unit). It describes the start of training, not a
    trained model, so it has no best/end variants.
    """

    name = "neuron_grads"
    caption = "Per-unit gradient traces over the first steps: the symmetry of zero init"
    files = ("neuron_grads.png", "neuron_grads.csv", "neuron_grads.json")

    def __init__(
        self,
        num_steps: int = 50,
        max_units: int = 16,
        max_layers: int = 3,
        dirpath: str | None = None,
    ) -> None:
        super().__init__(dirpath)
        self.num_steps = positive_int(num_steps, "callbacks.neuron_grads.num_steps")
        self.max_units = positive_int(max_units, "callbacks.neuron_grads.max_units")
        self.max_layers = positive_int(max_layers, "callbacks.neuron_grads.max_layers")
        self.traces: dict[str, list[np.ndarray]] = {}
        self.steps: list[int] = []
        self.epochs: list[int] = []  # the epoch (1 = the first) of each traced step
        self.layers: list[tuple[str, nn.Module]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.layers = weight_layers(network(pl_module))[:-1][: self.max_layers]
        self.traces = {name: [] for name, _ in self.layers}
        self.steps, self.epochs = [], []

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip(trainer) or trainer.global_step >= self.num_steps or not self.layers:
            return
        norms = torch.cat([unit_grad_norms(m)[: self.max_units].cpu() for _, m in self.layers])
        offset = 0
        for name, module in self.layers:
            n = min(self.max_units, module.weight.shape[0])
            self.traces[name].append(norms[offset : offset + n].numpy())
            offset += n
        self.steps.append(trainer.global_step)
        self.epochs.append(trainer.current_epoch + 1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip(trainer) or not self.steps:
            return
        out = self.out_dir(trainer)
        rows: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        for name, trace in self.traces.items():
            values = np.stack(trace)  # steps x units
            for step, epoch, per_unit in zip(self.steps, self.epochs, values, strict=True):
                rows += [
                    {"step": step, "epoch": epoch, "layer": name, "unit": u, "grad_norm": float(g)}
                    for u, g in enumerate(per_unit)
                ]
            spreads = [relative_spread(v) for v in values]
            summary[name] = {
                "units_traced": values.shape[1],
                "max_relative_spread": max(spreads),
                "identical_gradients": bool(max(spreads) < 1e-5),
                "all_zero": bool(np.all(values == 0)),
            }
        write_csv(out / "neuron_grads.csv", rows)
        epochs = sorted(set(self.epochs))
        write_json(
            out / "neuron_grads.json",
            {"steps": len(self.steps), "epochs": epochs, "layers": summary},
        )
        labels = {name: layer_label(name, m) for name, m in self.layers}
        plot_traces(self.steps, self.traces, labels, summary, out / "neuron_grads.png")


def plot_traces(
    steps: list[int],
    traces: dict[str, list[np.ndarray]],
    labels: dict[str, str],
    summary: dict[str, Any],
    path: Path,
) -> None:
    fig, axes = grid_figure(len(traces), cols=3, size=(4.6, 3.4))
    for ax, (name, trace) in zip(axes, traces.items(), strict=True):
        values = np.stack(trace)
        ax.plot(steps, values, lw=1.0, alpha=0.8)
        verdict = "all units identical" if summary[name]["identical_gradients"] else "units differ"
        ax.set_title(f"{labels[name]}\n{values.shape[1]} units: {verdict}", fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("unit weight-gradient norm")
    fig.suptitle("Per-neuron gradients over the first steps (one line per unit)")
    save_figure(fig, path)
