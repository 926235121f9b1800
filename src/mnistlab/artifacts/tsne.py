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

from mnistlab.artifacts.figures import grid_figure, save_figure
from mnistlab.artifacts.layers import (
    SPLITS,
    network,
    probe_images,
)
from mnistlab.artifacts.trained_models import ModelDiagnostic, ModelState, by_name
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


class FeatureTSNE(ModelDiagnostic):
    """At the end of training, embeds ``num_samples`` images of ``split`` with t-SNE.

    It embeds the features of the checkpoint the test metrics use (``best``) and, when it is
    an earlier epoch, those of the end of training too. Writes ``tsne.csv`` (model, epoch,
    x, y, label, class), ``tsne.json`` (per model: perplexity, KL divergence, silhouette of
    the classes in 2-D, near 1 = well separated clusters) and ``tsne.png`` (one panel per
    model, titled ``best (epoch k)`` / ``end (epoch n)``).
    """

    name = "tsne"
    caption = "t-SNE of the penultimate features, coloured by class (best checkpoint and end)"
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

    def describe(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        models: list[tuple[ModelState, torch.nn.Module]],
    ) -> None:
        x, labels = probe_images(trainer, pl_module, self.split, self.num_samples, self.seed)
        y = labels.numpy()
        names = list(getattr(trainer.datamodule, "class_names", [])) or [
            str(i) for i in range(int(labels.max()) + 1)
        ]
        out = self.out_dir(trainer)
        rows, panels, results = [], [], []
        for state, model in models:
            features = penultimate_features(model, x)
            try:
                xy, kl = embed_features(features, self.perplexity, self.pca_dims, self.seed)
            except ValueError as err:
                log.warning("t-SNE of the %s model skipped: %s", state.label, err)
                results.append((state, {"skipped": str(err)}))
                continue
            silhouette = (
                float(silhouette_score(xy, y)) if len(set(y.tolist())) > 1 else float("nan")
            )
            rows += [
                {"model": state.name, "epoch": state.epoch, "x": float(a), "y": float(b),
                 "label": int(c), "class": names[c]}
                for (a, b), c in zip(xy, y, strict=True)
            ]  # fmt: skip
            results.append((state, {"feature_dim": features.shape[1], "kl_divergence": kl,
                                    "silhouette_2d": silhouette}))  # fmt: skip
            panels.append((f"{state.label}{': tested' if state.tested else ''}, "
                           f"silhouette {silhouette:.2f}", xy))  # fmt: skip
        settings = {"num_samples": len(y), "split": self.split, "perplexity": self.perplexity}
        write_json(out / "tsne.json", {**settings, **by_name(results)})
        if rows:
            write_csv(out / "tsne.csv", rows)
            title = f"{type(network(pl_module)).__name__} penultimate features, {self.split} split (n={len(y)})"
            plot_tsne(panels, y, names, title, out / "tsne.png")


def plot_tsne(
    panels: list[tuple[str, np.ndarray]],
    labels: np.ndarray,
    names: list[str],
    title: str,
    path: Path,
) -> None:
    """One scatter per model (``(title, xy)``), coloured by class, one shared legend."""
    from matplotlib import colormaps

    fig, axes = grid_figure(len(panels), cols=len(panels), size=(6.2, 6.0))
    cmap = colormaps["tab10"]
    for ax, (panel_title, xy) in zip(axes, panels, strict=True):
        for c, name in enumerate(names):
            pts = xy[labels == c]
            ax.scatter(pts[:, 0], pts[:, 1], s=4, color=cmap(c % 10), label=name, alpha=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel_title, fontsize=10)
    axes[-1].legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
