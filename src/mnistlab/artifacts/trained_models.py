"""The trained models a diagnostic describes: the checkpoint the test metrics use, and the end.

A run's test metrics come from its best checkpoint (by val/acc), not from the weights
left at the end of training. A diagnostic of the trained model (dead units, t-SNE,
weight histograms) describes that same checkpoint, and the end of training as well when
the two differ, and says which in its files and figures: ``best (epoch 3)``,
``end (epoch 5)``, or ``best = end (epoch 5)``. Epochs count 1..n (0 = initialization).
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from mnistlab.artifacts.base import Diagnostic
from mnistlab.artifacts.layers import network

log = logging.getLogger(__name__)

#: the names of the two trained models, in the order they are described
NAMES = ("best", "end")


@dataclass(frozen=True)
class ModelState:
    """Which trained model: ``best`` (the best checkpoint) or ``end`` (the last weights).

    ``tested``: the test metrics describe this model. ``is_end``: the best checkpoint is
    also the end of training (one model, described once).
    """

    name: str
    epoch: int
    tested: bool = False
    is_end: bool = False

    @property
    def label(self) -> str:
        """``best (epoch 3)``, ``end (epoch 5)`` or ``best = end (epoch 5)``."""
        name = "best = end" if self.is_end else self.name
        return f"{name} (epoch {self.epoch})"

    def record(self) -> dict[str, Any]:
        """The fields every JSON entry of this model carries."""
        return {"epoch": self.epoch, "label": self.label, "tested": self.tested}


@functools.lru_cache(maxsize=1)
def _load(path: str, mtime_ns: int) -> tuple[dict[str, torch.Tensor], int]:
    """(state_dict, epoch 1..n) of a checkpoint; the last one is kept for the next diagnostic."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint["state_dict"], int(checkpoint["epoch"]) + 1  # Lightning saves 0-based


def _best_checkpoint(trainer: L.Trainer) -> Path | None:
    callback = trainer.checkpoint_callback
    path = Path(callback.best_model_path) if callback and callback.best_model_path else None
    if path is not None and not path.is_file():
        log.warning("best checkpoint %s is gone: diagnostics describe the end weights", path)
        return None
    return path


def _with_weights(pl_module: L.LightningModule, state: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of the module's network holding the checkpoint's weights."""
    net = network(pl_module)
    prefix = "net." if net is not pl_module else ""
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    model = copy.deepcopy(net)
    model.load_state_dict(weights)
    return model


def trained_models(
    trainer: L.Trainer, pl_module: L.LightningModule
) -> list[tuple[ModelState, nn.Module]]:
    """The distinct trained models after fitting, the tested one first.

    ``[best, end]`` when the best checkpoint is an earlier epoch, ``[best = end]`` when it is
    the last one, ``[end]`` when no checkpoint was kept (then the test used the end weights).
    """
    end_epoch = trainer.current_epoch  # after fitting: the number of epochs completed
    path = _best_checkpoint(trainer)
    if path is None:
        return [(ModelState("end", end_epoch, tested=True), network(pl_module))]
    state, best_epoch = _load(str(path), path.stat().st_mtime_ns)
    if best_epoch == end_epoch:
        return [(ModelState("best", end_epoch, tested=True, is_end=True), network(pl_module))]
    return [
        (ModelState("best", best_epoch, tested=True), _with_weights(pl_module, state)),
        (ModelState("end", end_epoch), network(pl_module)),
    ]


def by_name(results: list[tuple[ModelState, dict[str, Any]]]) -> dict[str, Any]:
    """``{"tested": name, "best": {...}, "end": {...}}`` for a JSON file: one entry per name,
    the same numbers under both when the best checkpoint is the end of training."""
    out: dict[str, Any] = {"tested": next(s.name for s, _ in results if s.tested)}
    for state, values in results:
        out[state.name] = {**state.record(), **values}
        if state.is_end:
            out["end"] = out[state.name]
    return out


class ModelDiagnostic(Diagnostic):
    """A diagnostic of the trained model (not of the training process).

    When fitting ends, :meth:`describe` gets :func:`trained_models`: the tested checkpoint
    and, when it differs, the end of training. Subclasses write files and figures that
    name each model by its :attr:`ModelState.label`.
    """

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.skip(trainer):
            self.describe(trainer, pl_module, trained_models(trainer, pl_module))

    def describe(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        models: list[tuple[ModelState, nn.Module]],
    ) -> None:
        raise NotImplementedError
