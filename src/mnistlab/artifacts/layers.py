"""What the diagnostics look at inside a network: its weight and activation layers, and probe images."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from mnistlab.models.common import activation_name
from mnistlab.scratch.network import Activation as HandActivation
from mnistlab.scratch.network import Dense as HandDense

#: the data splits a diagnostic can probe
SPLITS = ("train", "val", "test")


def network(pl_module: L.LightningModule) -> nn.Module:
    """The classifier inside a ClassifierModule (``.net``), or the module itself."""
    return getattr(pl_module, "net", pl_module)


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
        kind = activation_name(module)
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
