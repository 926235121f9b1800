"""Grad-CAM heat maps (Captum) over test images, correct and misclassified side by side."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from torch import nn

from mnistlab.artifacts.evaluation import Predictions, TestSetArtifact
from mnistlab.artifacts.figures import (
    CORRECT_COLOR,
    WRONG_COLOR,
    CanvasFigure,
    TileCanvas,
    short_name,
    to_unit_gray,
)
from mnistlab.errors import ConfigError, positive_int

INPUT_METHODS = ("integrated_gradients", "saliency")
METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "integrated_gradients": "Integrated gradients",
    "saliency": "Saliency (|input gradient|)",
}


def conv_layer_names(net: nn.Module) -> list[str]:
    """Dotted names of the net's Conv2d layers, in registration order."""
    return [name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]


def resolve_layer(net: nn.Module, name: str | None) -> tuple[str, nn.Module] | None:
    """The layer Grad-CAM hooks: ``name`` (dotted, as in ``net.named_modules()``) or, when None,
    the net's last conv layer (``net.conv_layers()[-1]``); None when the net has no conv layer."""
    modules = dict(net.named_modules())
    if name is None:
        convs = (
            net.conv_layers()
            if hasattr(net, "conv_layers")
            else [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        )
        if not convs:
            return None
        last = convs[-1]
        return next(n for n, m in modules.items() if m is last), last
    if name not in modules or name == "":
        convs = conv_layer_names(net)
        raise ConfigError(
            f"callbacks.gradcam.layer={name!r} is not a layer of {type(net).__name__}; "
            + (
                f"choose one of its conv layers: {', '.join(convs)}, or null for the last one"
                if convs
                else "this model has no conv layers: set layer=null for input attribution"
            )
        )
    return name, modules[name]


def scale_to_unit(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map to a maximum of 1 (maps that are all zero stay zero)."""
    peak = maps.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, 1, 1)
    return maps / peak


def attribution_maps(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    layer: nn.Module | None = None,
    method: str = "integrated_gradients",
    baseline: torch.Tensor | None = None,
    ig_steps: int = 32,
) -> torch.Tensor:
    """Non-negative maps of shape (N, H, W), same device as ``inputs``, one per image.

    With ``layer``: Grad-CAM for class ``targets`` (ReLU of the gradient-weighted feature maps,
    upsampled bilinearly with :meth:`LayerAttribution.interpolate`). Without: ``method``'s
    absolute input attribution (``baseline`` is the integrated-gradients starting image).
    Runs with gradients on even inside Lightning's inference mode.
    """
    if layer is None and method not in INPUT_METHODS:
        raise ConfigError(
            f"callbacks.gradcam.fallback={method!r} is unknown; choose one of: {', '.join(INPUT_METHODS)}"
        )
    with torch.inference_mode(False), torch.enable_grad():
        inputs = inputs.detach().clone()
        targets = targets.detach().clone()
        if layer is not None:
            cam = LayerGradCam(forward, layer)
            attr = cam.attribute(inputs, target=targets, relu_attributions=True)
            maps = LayerAttribution.interpolate(
                attr, tuple(inputs.shape[-2:]), interpolate_mode="bilinear"
            )
            maps = maps.sum(dim=1).clamp(
                min=0
            )  # one map per image; bilinear keeps it >= 0 up to rounding
        elif method == "saliency":
            maps = Saliency(forward).attribute(inputs, target=targets, abs=True).sum(dim=1)
        else:
            base = baseline.detach().clone().expand_as(inputs) if baseline is not None else None
            attr = IntegratedGradients(forward).attribute(
                inputs, baselines=base, target=targets, n_steps=ig_steps
            )
            maps = attr.abs().sum(dim=1)
    return maps.detach()


@dataclass
class AttributionSample:
    """One panel: which test image, its true and predicted class and confidence, and the map."""

    image: torch.Tensor  # uint8 (1, H, W), CPU
    label: int
    pred: int
    confidence: float
    heatmap: torch.Tensor | None = None  # (H, W) in [0, 1], CPU


def pick_samples(
    labels: torch.Tensor,
    preds: torch.Tensor,
    confidence: torch.Tensor,
    num_classes: int,
    per_class: int,
) -> dict[int, tuple[list[int], list[int]]]:
    """Per true class: the first ``per_class`` correct images in test order, and the
    ``per_class`` most confident mistakes. Returns positions into the given tensors."""
    chosen: dict[int, tuple[list[int], list[int]]] = {}
    correct = preds == labels
    for c in range(num_classes):
        in_class = labels == c
        right = torch.nonzero(in_class & correct).flatten()[:per_class].tolist()
        wrong = torch.nonzero(in_class & ~correct).flatten()
        wrong = wrong[torch.argsort(confidence[wrong], descending=True, stable=True)][
            :per_class
        ].tolist()
        chosen[c] = (right, wrong)
    return chosen


def overlay(image: torch.Tensor, heatmap: torch.Tensor, strength: float = 0.7) -> np.ndarray:
    """RGB array: the grayscale image, tinted with the 'jet' color of the heat map where it is hot
    (opacity grows with the heat, so cold regions show the plain image)."""
    gray = np.repeat(to_unit_gray(image)[..., None], 3, axis=2)
    heat = heatmap.cpu().numpy()
    color = matplotlib.colormaps["jet"](heat)[..., :3]
    alpha = strength * heat[..., None]
    return (1 - alpha) * gray + alpha * color


def plot_attribution_grid(
    rows: dict[int, tuple[list[AttributionSample], list[AttributionSample]]],
    class_names: Sequence[str],
    per_class: int,
    title: str,
) -> CanvasFigure:
    """One row per class: correct images on the left, misclassified on the right, maps overlaid;
    each image titled with its predicted class and confidence."""
    label_px = 4 + 3 * max(len(short_name(n, 12)) for n in class_names)
    canvas = TileCanvas(
        len(rows),
        2 * per_class,
        top=23,
        left=label_px,
        caption=6,
        split_after=per_class - 1,
        split=8,
        right=2,
    )
    texts = []
    for r, (c, sides) in enumerate(sorted(rows.items())):
        x, y = canvas.row_label_xy(r)
        texts.append(
            (x, y, short_name(class_names[c], 12), {"ha": "right", "va": "center", "fontsize": 8})
        )
        for side, samples in enumerate(sides):
            for k in range(per_class):
                col = side * per_class + k
                if k >= len(samples):
                    if k == 0:
                        cx, cy = canvas.caption_xy(r, col)
                        texts.append(
                            (
                                cx,
                                cy + canvas.tile / 2,
                                "none" if side == 0 else "no mistakes",
                                {"ha": "center", "va": "center", "fontsize": 8, "color": "gray"},
                            )
                        )
                    continue
                sample = samples[k]
                canvas.put(r, col, overlay(sample.image, sample.heatmap))
                cx, cy = canvas.caption_xy(r, col)
                texts.append(
                    (
                        cx,
                        cy,
                        f"{short_name(class_names[sample.pred], 9)} {sample.confidence:.0%}",
                        {
                            "ha": "center",
                            "va": "bottom",
                            "fontsize": 7,
                            "color": CORRECT_COLOR if side == 0 else WRONG_COLOR,
                        },
                    )
                )
    fig, ax = canvas.figure(scale=3)
    for x, y, text, style in texts:
        ax.text(x, y, text, **style)
    for side, heading in enumerate(("correct", "misclassified")):
        left, _ = canvas.origin(0, side * per_class)
        right, _ = canvas.origin(0, side * per_class + per_class - 1)
        ax.text(
            (left + right + canvas.tile) / 2,
            canvas.top - 1,
            heading,
            ha="center",
            va="bottom",
            fontsize=8.5,
            fontweight="bold",
            color=CORRECT_COLOR if side == 0 else WRONG_COLOR,
        )
    ax.text(
        canvas.array.shape[1] / 2,
        1,
        title + "\nrows: true class; above each image: the predicted\n"
        "class (whose evidence is shown) and its probability",
        ha="center",
        va="top",
        fontsize=7.5,
    )
    return fig


log = logging.getLogger(__name__)


def _net(pl_module: L.LightningModule) -> nn.Module:
    return getattr(pl_module, "net", pl_module)


class GradCAMArtifact(TestSetArtifact):
    """Writes ``gradcam.png``: per class, ``per_class`` correct and ``per_class`` misclassified test
    images with the attribution for the *predicted* class overlaid.

    Args:
        dirpath: artifact folder.
        layer: dotted module name in the net for Grad-CAM (e.g. ``conv.4``); null: the last conv layer.
        per_class: images per class on each side (correct / misclassified).
        fallback: input attribution for nets without conv layers: integrated_gradients or saliency.
    """

    name = "gradcam"
    caption = "Where the model looks: Grad-CAM (Captum) on correct and misclassified test images"
    files = ("gradcam.png",)
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
        self.layer = layer
        self.per_class = positive_int(per_class, "callbacks.gradcam.per_class")
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
