"""Inference latency per batch and per sample (mean +- std over repeats)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from mnistlab.artifacts.base import Diagnostic
from mnistlab.artifacts.figures import grid_figure, save_figure
from mnistlab.artifacts.layers import (
    probe_images,
)
from mnistlab.errors import (
    ConfigError,
    positive_int,
    whole_number,
)
from mnistlab.files import write_json


def measure_latency(
    forward: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int = 30, warmup: int = 5
) -> np.ndarray:
    """Seconds per call of ``forward(x)``, ``repeats`` times after ``warmup`` untimed calls.

    On CUDA the device is synchronized around each call, so the time is the kernel time too.
    """
    cuda = x.is_cuda
    with torch.inference_mode():
        for _ in range(warmup):
            forward(x)
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(x.device)
            start = time.perf_counter()
            forward(x)
            if cuda:
                torch.cuda.synchronize(x.device)
            times.append(time.perf_counter() - start)
    return np.asarray(times)


class InferenceLatency(Diagnostic):
    """After training, times the module's forward pass (eval mode) on test images of each batch size.

    Writes ``latency.json`` (per batch size: mean and std in ms per batch and per
    sample, device, torch threads) and ``latency.png``. Timings from a shared
    machine are noisy; the std says how much.
    """

    name = "latency"
    caption = "Inference latency per batch and per sample for a few batch sizes"
    files = ("latency.png", "latency.json")

    def __init__(
        self,
        batch_sizes: Sequence[int] = (1, 64, 1000),
        repeats: int = 30,
        warmup: int = 5,
        dirpath: str | None = None,
    ) -> None:
        super().__init__(dirpath)
        if not batch_sizes:
            raise ConfigError("callbacks.latency.batch_sizes is empty; give e.g. [1, 64, 1000]")
        self.batch_sizes = [positive_int(b, "callbacks.latency.batch_sizes[]") for b in batch_sizes]
        self.repeats = whole_number(repeats, "callbacks.latency.repeats", minimum=2)
        self.warmup = whole_number(warmup, "callbacks.latency.warmup", minimum=0)
        self.results: list[dict[str, Any]] = []

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip(trainer):
            return
        x, _ = probe_images(trainer, pl_module, "test", max(self.batch_sizes))
        was_training = pl_module.training
        pl_module.eval()
        self.results = []
        try:
            for b in self.batch_sizes:
                if b > len(x):
                    continue
                t = measure_latency(pl_module, x[:b], self.repeats, self.warmup) * 1000.0
                self.results.append(
                    {
                        "batch_size": b,
                        "repeats": self.repeats,
                        "batch_ms_mean": float(t.mean()),
                        "batch_ms_std": float(t.std(ddof=1)),
                        "sample_ms_mean": float(t.mean() / b),
                        "sample_ms_std": float(t.std(ddof=1) / b),
                    }
                )
        finally:
            pl_module.train(was_training)
        out = self.out_dir(trainer)
        device = str(pl_module.device)
        write_json(
            out / "latency.json",
            {"device": device, "torch_threads": torch.get_num_threads(), "results": self.results},
        )
        plot_latency(
            self.results,
            f"{type(getattr(pl_module, 'net', pl_module)).__name__} on {device}, "
            f"{torch.get_num_threads()} thread(s)",
            out / "latency.png",
        )


def plot_latency(results: list[dict[str, Any]], title: str, path: Any) -> None:
    fig, (ax_batch, ax_sample) = grid_figure(2, cols=2, size=(4.5, 3.5))
    labels = [str(r["batch_size"]) for r in results]
    for ax, key, what in ((ax_batch, "batch", "per batch"), (ax_sample, "sample", "per sample")):
        means = [r[f"{key}_ms_mean"] for r in results]
        stds = [r[f"{key}_ms_std"] for r in results]
        lower = [
            min(sd, 0.95 * m) for m, sd in zip(means, stds, strict=True)
        ]  # log axis: stay above 0
        ax.bar(labels, means, yerr=[lower, stds], capsize=4, color="C2")
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("milliseconds (mean +- std)")
        ax.set_title(f"Inference latency {what}", fontsize=10)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
