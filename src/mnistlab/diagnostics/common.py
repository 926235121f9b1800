"""Plumbing shared by the diagnostics callbacks: output folder, probe images, layer lists, files."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from matplotlib.figure import Figure
from torch import nn

from mnistlab.models.common import ScaledTanh
from mnistlab.scratch.network import Activation as HandActivation
from mnistlab.scratch.network import Dense as HandDense

#: activation module type -> kind; the kind decides which statistic applies
ACTIVATION_KINDS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.GELU: "gelu",
    nn.ELU: "elu",
    nn.SELU: "selu",
    nn.SiLU: "silu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    ScaledTanh: "scaled_tanh",
}


def diagnostics_dir(trainer: L.Trainer, dirpath: str | Path | None) -> Path:
    """``dirpath`` or ``<trainer.default_root_dir>/artifacts/diagnostics``, created."""
    path = (
        Path(dirpath) if dirpath else Path(trainer.default_root_dir) / "artifacts" / "diagnostics"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def network(pl_module: L.LightningModule) -> nn.Module:
    """The classifier inside a ClassifierModule (``.net``), or the module itself."""
    return getattr(pl_module, "net", pl_module)


def skip(trainer: L.Trainer) -> bool:
    """Diagnostics stay out of sanity checks, fast_dev_run and non-zero ranks."""
    return bool(trainer.sanity_checking or trainer.fast_dev_run or not trainer.is_global_zero)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Linear and conv layers in forward-definition order (the head last for mnistlab models)."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, HandDense))
    ]


def activation_layers(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(name, module, kind)`` of every activation module."""
    found = []
    for name, module in model.named_modules():
        kind = ACTIVATION_KINDS.get(type(module))
        if isinstance(module, HandActivation) and module.kind != "identity":
            kind = module.kind  # mnistlab.scratch: the kind is a setting, not a module type
        if kind is not None:
            found.append((name, module, kind))
    return found


def layer_label(name: str, module: nn.Module) -> str:
    """``body.1.0 (784->256)``: the module path plus its shape, for legends."""
    if isinstance(module, (nn.Linear, HandDense)):
        return f"{name} ({module.in_features}->{module.out_features})"
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return f"{name} (conv {module.in_channels}->{module.out_channels})"
    return name


def probe_images(
    trainer: L.Trainer, pl_module: L.LightningModule, split: str, num_samples: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random subset of a split, normalized, on the module's device.

    Needs an mnistlab data module (``split()`` and ``normalize()``).
    """
    datamodule = trainer.datamodule
    if datamodule is None or not hasattr(datamodule, "split"):
        raise RuntimeError(
            "diagnostics need an mnistlab MNISTDataModule (trainer.fit(..., datamodule=...))"
        )
    images, labels = datamodule.split(split)
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(labels), generator=generator)[: min(num_samples, len(labels))]
    index = index.to(images.device)
    x = datamodule.normalize(images[index].to(pl_module.device))
    return x, labels[index].cpu()


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_json_safe(data), indent=2) + "\n")


def grid_figure(
    panels: int, cols: int = 3, size: tuple[float, float] = (4.2, 3.0)
) -> tuple[Figure, list[Any]]:
    """A figure with ``panels`` axes in a grid (unused cells hidden); no pyplot, no GUI."""
    cols = max(1, min(cols, panels))
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> None:
    fig.savefig(path, dpi=dpi)


def depth_colors(n: int) -> Iterable[Any]:
    """One colour per layer, dark (input side) to light (output side)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1) * 0.9) for i in range(n)]
