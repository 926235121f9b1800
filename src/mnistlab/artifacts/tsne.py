"""t-SNE of the penultimate-layer features, coloured by class: what the head gets to separate."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score

from mnistlab.artifacts.base import Diagnostic
from mnistlab.artifacts.figures import grid_figure, save_figure
from mnistlab.artifacts.layers import (
    SPLITS,
    network,
    probe_images,
)
from mnistlab.errors import (
    one_of,
    positive_int,
    positive_number,
    whole_number,
)
from mnistlab.files import write_csv, write_json

log = logging.getLogger(__name__)


@torch.no_grad()
def penultimate_features(
    model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000
) -> np.ndarray:
    """``model.features(x)`` in eval mode, flattened to (N, D)."""
    was_training = model.training
    model.eval()
    try:
        parts = [
            model.features(x[i : i + batch_size]).flatten(1).float().cpu()
            for i in range(0, len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts).numpy()


def embed_features(
    features: np.ndarray, perplexity: float = 30.0, pca_dims: int = 50, seed: int = 0
) -> tuple[np.ndarray, float]:
    """2-D t-SNE embedding (after PCA to ``pca_dims`` when wider) and its final KL divergence."""
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN/inf (a diverged model?): no t-SNE")
    if features.shape[1] > pca_dims and len(features) > pca_dims:
        features = PCA(n_components=pca_dims, random_state=seed).fit_transform(features)
    perplexity = min(perplexity, (len(features) - 1) / 3)
    tsne = TSNE(
        n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
    )
    return tsne.fit_transform(features), float(tsne.kl_divergence_)


class FeatureTSNE(Diagnostic):
    """At the end of training, embeds ``num_samples`` images of ``split`` with t-SNE.

    Writes ``tsne.csv`` (x, y, label, class), ``tsne.json`` (perplexity, KL divergence,
    silhouette of the classes in 2-D: near 1 = well separated clusters) and ``tsne.png``.
    """

    name = "tsne"
    caption = "t-SNE of the penultimate features, coloured by class"
    files = ("tsne.png", "tsne.csv", "tsne.json")

    def __init__(
        self,
        num_samples: int = 2000,
        split: str = "test",
        perplexity: float = 30.0,
        pca_dims: int = 50,
        seed: int = 0,
        dirpath: str | None = None,
    ) -> None:
        super().__init__(dirpath)
        self.num_samples = whole_number(num_samples, "callbacks.tsne.num_samples", minimum=10)
        self.split = one_of(split, "callbacks.tsne.split", SPLITS)
        self.perplexity = positive_number(perplexity, "callbacks.tsne.perplexity")
        self.pca_dims = positive_int(pca_dims, "callbacks.tsne.pca_dims")
        self.seed = seed

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip(trainer):
            return
        x, labels = probe_images(trainer, pl_module, self.split, self.num_samples, self.seed)
        features = penultimate_features(network(pl_module), x)
        out = self.out_dir(trainer)
        try:
            xy, kl = embed_features(features, self.perplexity, self.pca_dims, self.seed)
        except ValueError as err:
            log.warning("t-SNE skipped: %s", err)
            write_json(out / "tsne.json", {"skipped": str(err)})
            return
        names = list(getattr(trainer.datamodule, "class_names", [])) or [
            str(i) for i in range(int(labels.max()) + 1)
        ]
        y = labels.numpy()
        silhouette = float(silhouette_score(xy, y)) if len(set(y.tolist())) > 1 else float("nan")
        write_csv(
            out / "tsne.csv",
            [
                {"x": float(a), "y": float(b), "label": int(c), "class": names[c]}
                for (a, b), c in zip(xy, y, strict=True)
            ],
        )
        write_json(
            out / "tsne.json",
            {
                "num_samples": len(y),
                "split": self.split,
                "feature_dim": features.shape[1],
                "perplexity": self.perplexity,
                "kl_divergence": kl,
                "silhouette_2d": silhouette,
            },
        )
        plot_tsne(
            xy,
            y,
            names,
            f"{type(network(pl_module)).__name__} penultimate features, {self.split} split "
            f"(n={len(y)}, silhouette {silhouette:.2f})",
            out / "tsne.png",
        )


def plot_tsne(xy: np.ndarray, labels: np.ndarray, names: list[str], title: str, path: Path) -> None:
    from matplotlib import colormaps

    fig, (ax,) = grid_figure(1, size=(7.0, 6.0))
    cmap = colormaps["tab10"]
    for c, name in enumerate(names):
        pts = xy[labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=4, color=cmap(c % 10), label=name, alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    save_figure(fig, path)
