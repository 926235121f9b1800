"""The one place a run is built from its config: data, model, module, callbacks, loggers, trainer.

``train``, ``eval``, ``checkpoint``, ``predict`` and the benchmark all build through
here, so a bad value fails the same way everywhere: one :class:`ConfigError` line,
before any data is loaded. Building is cheap (no data is read).

The Lightning Trainer of ``conf/trainer`` is Lightning's own, with a progress bar that
costs little: Lightning's default bar redraws after every batch, which for MNIST-sized
models costs about as much as a training step (``make bench``). Here it is drawn every
``progress_bar_refresh_rate`` batches, and by default only when someone can see it
(stderr is a terminal), not into log files. When no bar is drawn, one line per epoch says
how training goes instead (:class:`~mnistlab.callbacks.progress_log.EpochProgressLog`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ProgressBar, TQDMProgressBar
from omegaconf import DictConfig, OmegaConf

from mnistlab.artifacts.evaluation import attach_writers
from mnistlab.callbacks.progress_log import EpochProgressLog
from mnistlab.classifier_module import ClassifierModule
from mnistlab.config import validate
from mnistlab.data import BatchAugmentation, MNISTDataModule
from mnistlab.errors import MnistlabError, one_of, positive_int


def instantiate(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that lets our own one-line errors through unwrapped."""
    try:
        return hydra.utils.instantiate(config, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, MnistlabError):
            raise err.__cause__ from None
        raise


def build_datamodule(cfg: DictConfig) -> MNISTDataModule:
    """The data module with its augmentation (loads no data)."""
    transforms = instantiate(OmegaConf.select(cfg, "augmentation.transforms", default=[]) or [])
    return instantiate(cfg.data, augmentation=BatchAugmentation(list(transforms)), _convert_="all")


def build_scheduler_factory(cfg: DictConfig) -> tuple[Any, str, str | None]:
    """(partial scheduler or None, interval, monitor) from ``cfg.scheduler``.

    ``scheduler.interval`` (``step`` or ``epoch``) and ``scheduler.monitor`` sit beside the
    scheduler's own arguments, so a user writes ``scheduler.warmup_fraction=0.1``.
    """
    section = OmegaConf.to_container(cfg.get("scheduler") or {}, resolve=True)
    interval = section.pop("interval", "step")
    monitor = section.pop("monitor", None)
    scheduler = instantiate(section, _convert_="all") if section.get("_target_") else None
    return scheduler, interval, monitor


def build_module(cfg: DictConfig, datamodule: MNISTDataModule) -> ClassifierModule:
    """Network + objective + optimizer + schedule, sized for ``datamodule``'s data set."""
    net = instantiate(
        cfg.model,
        num_classes=datamodule.num_classes,
        input_shape=datamodule.input_shape,
        _convert_="all",
    )
    scheduler, interval, monitor = build_scheduler_factory(cfg)
    module = ClassifierModule(
        net=net,
        optimizer=instantiate(cfg.optimizer, _convert_="all"),
        scheduler=scheduler,
        scheduler_interval=interval,
        scheduler_monitor=monitor,
        class_names=datamodule.class_names,
        **OmegaConf.to_container(cfg.get("module", {}), resolve=True),
    )
    module.check_fits(datamodule.spec)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    return module


def build(cfg: DictConfig) -> tuple[MNISTDataModule, ClassifierModule]:
    """Validated data module and LightningModule from a composed config (loads no data)."""
    validate(cfg)
    datamodule = build_datamodule(cfg)
    return datamodule, build_module(cfg, datamodule)


def instantiate_section(section: Mapping[str, Any] | None) -> list[Any]:
    """Instantiate every non-null entry of a name -> config mapping (callbacks, loggers)."""
    if not section:
        return []
    return [instantiate(c) for c in section.values() if c is not None and "_target_" in c]


def build_callbacks(
    cfg: DictConfig, extra: Sequence[Callback] = (), loggers: bool = True
) -> list[Callback]:
    """``cfg.callbacks`` plus ``extra``, with the test-set artifacts handed to the collector.

    Without loggers, LearningRateMonitor is dropped: it refuses to run without one
    (``history.csv`` has the lr anyway).
    """
    callbacks = attach_writers([*instantiate_section(cfg.get("callbacks")), *extra])
    if not loggers:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Any]:
    """The experiment loggers of ``cfg.logger`` (CSV, TensorBoard, W&B, ...)."""
    return instantiate_section(cfg.get("logger"))


def build_trainer(
    cfg: DictConfig,
    callbacks: Sequence[Callback] = (),
    loggers: Sequence[Any] = (),
    **overrides: Any,
) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with ``overrides`` (e.g. ``devices=1``) applied."""
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_cfg.update(overrides)
    return instantiate(trainer_cfg, callbacks=list(callbacks), logger=list(loggers) or False)


def make_trainer(
    enable_progress_bar: bool | str = "auto",
    progress_bar_refresh_rate: int = 20,
    progress_log: bool | str = "auto",
    callbacks: Sequence[Callback] | Callback | None = None,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """``lightning.Trainer(**trainer_kwargs)`` with the progress bar set up as described above.

    Args:
        enable_progress_bar: ``true``, ``false`` or ``auto`` (on when stderr is a terminal).
        progress_bar_refresh_rate: redraw the bar every this many batches.
        progress_log: one line per epoch on stderr: ``true``, ``false`` or ``auto`` (when no
            bar is drawn: stderr is not a terminal, or the bar is switched off).
        callbacks: the run's callbacks; a progress bar among them is kept as given.
    """
    one_of(enable_progress_bar, "trainer.enable_progress_bar", (True, False, "auto"))
    one_of(progress_log, "trainer.progress_log", (True, False, "auto"))
    positive_int(progress_bar_refresh_rate, "trainer.progress_bar_refresh_rate")
    callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or [])
    show = sys.stderr.isatty() if enable_progress_bar == "auto" else bool(enable_progress_bar)
    if show and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(TQDMProgressBar(refresh_rate=progress_bar_refresh_rate))
    if (not show if progress_log == "auto" else progress_log) and not any(
        isinstance(c, EpochProgressLog) for c in callbacks
    ):
        callbacks.append(EpochProgressLog())
    return L.Trainer(callbacks=callbacks, enable_progress_bar=show, **trainer_kwargs)
