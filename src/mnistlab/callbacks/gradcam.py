"""Grad-CAM heat maps (Captum) over test images, correct and misclassified side by side."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch import nn

from mnistlab.callbacks.evaluation import ArtifactWriter, Predictions
from mnistlab.errors import ConfigError
from mnistlab.viz.attribution import (
    INPUT_METHODS,
    METHOD_TITLES,
    AttributionSample,
    attribution_maps,
    pick_samples,
    plot_attribution_grid,
    resolve_layer,
    scale_to_unit,
)

log = logging.getLogger(__name__)


def _net(pl_module: L.LightningModule) -> nn.Module:
    return getattr(pl_module, "net", pl_module)


class GradCAMArtifact(ArtifactWriter):
    """Writes ``gradcam.png``: per class, ``per_class`` correct and ``per_class`` misclassified test
    images with the attribution for the *predicted* class overlaid.

    Args:
        dirpath: artifact folder.
        layer: dotted module name in the net for Grad-CAM (e.g. ``conv.4``); null: the last conv layer.
        per_class: images per class on each side (correct / misclassified).
        fallback: input attribution for nets without conv layers: integrated_gradients or saliency.
    """

    name = "gradcam"
    needs_images = True

    def __init__(
        self,
        dirpath: str | Path,
        layer: str | None = None,
        per_class: int = 2,
        fallback: str = "integrated_gradients",
    ) -> None:
        super().__init__(dirpath)
        if fallback not in INPUT_METHODS:
            raise ConfigError(
                f"callbacks.gradcam.fallback={fallback!r} is unknown; choose one of: {', '.join(INPUT_METHODS)}"
            )
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ConfigError(
                f"callbacks.gradcam.per_class={per_class!r} must be a whole number >= 1"
            )
        self.layer = layer
        self.per_class = per_class
        self.fallback = fallback
        #: the last figure's title: which method ran on which layer
        self.title = ""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        resolve_layer(_net(pl_module), self.layer)  # a wrong layer name fails before training

    def write(self, result: Predictions, pl_module: L.LightningModule) -> dict[str, float]:
        net = _net(pl_module)
        resolved = resolve_layer(net, self.layer)
        chosen = pick_samples(
            result.labels, result.preds, result.confidence, result.num_classes, self.per_class
        )
        flat = [p for right, wrong in chosen.values() for p in (*right, *wrong)]
        if not flat:
            return {}
        device = pl_module.device
        datamodule = pl_module.trainer.datamodule
        normalize = getattr(datamodule, "normalize", None) or (lambda x: x.float() / 255)
        inputs = normalize(result.images[flat].to(device))
        targets = result.preds[flat].to(device)
        if resolved is not None:
            layer_name, layer = resolved
            method, title = (
                "gradcam",
                f"Grad-CAM on {type(net).__name__} layer {layer_name} ({type(layer).__name__})",
            )
        else:
            layer = None
            method = self.fallback
            title = (
                f"{METHOD_TITLES[method]} on the input pixels\n({type(net).__name__} has no conv layer "
                "for Grad-CAM)"
            )
        baseline = normalize(torch.zeros_like(result.images[:1]).to(device))  # an all-black image
        was_training = net.training
        net.eval()
        try:
            maps = attribution_maps(
                net, inputs, targets, layer=layer, method=method, baseline=baseline
            )
        finally:
            net.train(was_training)
        maps = scale_to_unit(maps.float().cpu())
        by_position = {p: i for i, p in enumerate(flat)}
        rows = {}
        for c, (right, wrong) in chosen.items():
            rows[c] = tuple(
                [
                    AttributionSample(
                        result.images[p],
                        int(result.labels[p]),
                        int(result.preds[p]),
                        float(result.confidence[p]),
                        maps[by_position[p]],
                    )
                    for p in side
                ]
                for side in (right, wrong)
            )
        self.title = title
        self.save_figure(
            plot_attribution_grid(rows, result.class_names, self.per_class, title), "gradcam"
        )
        return {}
