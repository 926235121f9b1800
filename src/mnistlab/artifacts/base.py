"""The one base of every artifact: where its files go, when it stays quiet, how it saves them.

An artifact is one file in this package holding what it computes, how it draws it
and the :class:`Artifact` subclass that writes it. Defining the subclass with a
``name`` registers it (see :mod:`mnistlab.artifacts`); its options live in
``conf/callbacks/<name>.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
from matplotlib.figure import Figure

from mnistlab import files
from mnistlab.artifacts.figures import CanvasFigure, save_figure

Kind = Literal["test", "training", "diagnostic"]
KINDS: tuple[Kind, ...] = ("test", "training", "diagnostic")

#: name -> class of every artifact, filled as the artifact modules are imported
REGISTRY: dict[str, type[Artifact]] = {}


class Artifact(L.Callback):
    """Base of everything a run draws or tabulates besides ``metrics.json``.

    Class attributes a subclass sets:
        name: its key under ``callbacks`` and the stem of ``conf/callbacks/<name>.yaml``.
        kind: ``test`` (drawn from the test-set predictions, redrawn by ``eval.py``),
            ``training`` (drawn from the fit, on by default) or ``diagnostic`` (probes
            inside the network while it trains; off by default, ``callbacks=diagnostics``).
        caption: one line on what a reader learns from it (the README's table).
        files: the files it writes, relative to its folder (listed in the README).
        subdir: its folder under ``<run dir>/artifacts`` ('' or ``diagnostics``).

    Args:
        dirpath: the folder; ``None`` is ``<trainer.default_root_dir>/artifacts/<subdir>``.
        log_to_loggers: also send its PNGs to W&B / TensorBoard when those are on.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[Kind] = "training"
    caption: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    subdir: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the lab's own artifacts register; a subclass in a notebook or a test stays private
        if "name" in cls.__dict__ and cls.name and cls.__module__.startswith("mnistlab.artifacts."):
            if cls.kind not in KINDS or not cls.caption or not cls.files:
                raise TypeError(f"{cls.__name__} needs a kind in {KINDS}, a caption and its files")
            REGISTRY[cls.name] = cls

    def __init__(self, dirpath: str | Path | None = None, log_to_loggers: bool = True) -> None:
        self.dirpath = Path(dirpath) if dirpath else None
        self.log_to_loggers = log_to_loggers
        #: ``artifacts/<stem>`` -> PNG saved by the last :meth:`save_figure` calls
        self.figures: dict[str, Path] = {}

    def out_dir(self, trainer: L.Trainer | None = None) -> Path:
        """The artifact's folder, created."""
        if self.dirpath is None:
            if trainer is None:
                raise ValueError(f"callbacks.{self.name} has no dirpath and no trainer")
            base = Path(trainer.default_root_dir) / "artifacts"
            self.dirpath = base / self.subdir if self.subdir else base
        self.dirpath.mkdir(parents=True, exist_ok=True)
        return self.dirpath

    @staticmethod
    def skip(trainer: L.Trainer) -> bool:
        """Artifacts are for real runs, written once: not in the sanity check, not in
        ``fast_dev_run``, not on ranks other than zero."""
        return bool(trainer.sanity_checking or trainer.fast_dev_run or not trainer.is_global_zero)

    def save_figure(self, fig: Figure | CanvasFigure, stem: str) -> Path:
        """``<folder>/<stem>.png``, remembered for the loggers."""
        path = save_figure(fig, self.out_dir() / f"{stem}.png")
        self.figures[f"artifacts/{stem}"] = path
        return path

    def write_json(self, filename: str, data: Any) -> Path:
        return files.write_json(self.out_dir() / filename, data)

    def write_csv(self, filename: str, rows: list[dict[str, Any]]) -> Path:
        return files.write_csv(self.out_dir() / filename, rows)

    def send_figures(self, trainer: L.Trainer) -> None:
        """Log the PNGs saved since the last call to W&B / TensorBoard (when on)."""
        from mnistlab.artifacts.to_loggers import log_images

        if self.log_to_loggers and self.figures:
            log_images(trainer, self.figures)


class Diagnostic(Artifact):
    """Base of the probes inside the network while it trains (``callbacks=diagnostics``).

    They use Lightning's hooks (``on_after_backward`` for gradients, ``on_train_epoch_end``
    for activations, ...) and write into ``<run dir>/artifacts/diagnostics``.
    """

    kind = "diagnostic"
    subdir = "diagnostics"
