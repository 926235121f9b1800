"""Compose -> validate -> instantiate -> fit -> test -> metrics.json. Called by the root train.py."""

from __future__ import annotations

import logging
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from mnistlab.callbacks import EpochHistory, attach_writers
from mnistlab.config import instantiate, validate
from mnistlab.data import BatchAugmentation, MNISTDataModule
from mnistlab.errors import MnistlabError
from mnistlab.module import ClassifierModule
from mnistlab.search.pruning import trial_pruning
from mnistlab.utils import print_config_tree, quiet_warnings, write_json

log = logging.getLogger("mnistlab")

METRIC_KEYS = (
    "test/acc",
    "test/precision_macro",
    "test/recall_macro",
    "test/f1_macro",
    "test/loss",
)


def _output_dir(cfg: DictConfig) -> Path:
    out = OmegaConf.select(cfg, "paths.output_dir", default=None)
    path = Path(out) if out else Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _instantiate_dict(section: DictConfig | None) -> list[Any]:
    """Instantiate every non-null entry of a name -> config mapping (callbacks, loggers)."""
    if not section:
        return []
    return [instantiate(c) for c in section.values() if c is not None and "_target_" in c]


def build(cfg: DictConfig) -> tuple[MNISTDataModule, ClassifierModule]:
    """Data module and LightningModule from a composed config (cheap: loads no data)."""
    validate(cfg)
    transforms = instantiate(OmegaConf.select(cfg, "augmentation.transforms", default=[]) or [])
    datamodule: MNISTDataModule = instantiate(
        cfg.data, augmentation=BatchAugmentation(list(transforms)), _convert_="all"
    )
    net = instantiate(
        cfg.model,
        num_classes=datamodule.num_classes,
        input_shape=datamodule.input_shape,
        _convert_="all",
    )
    scheduler_cfg = cfg.get("scheduler") or {}
    scheduler = scheduler_cfg.get("scheduler")
    module = ClassifierModule(
        net=net,
        optimizer=instantiate(cfg.optimizer, _convert_="all"),
        scheduler=instantiate(scheduler, _convert_="all") if scheduler else None,
        scheduler_interval=scheduler_cfg.get("interval", "step"),
        scheduler_monitor=scheduler_cfg.get("monitor"),
        class_names=datamodule.class_names,
        **OmegaConf.to_container(cfg.get("module", {}), resolve=True),
    )
    module.check_fits(datamodule.spec)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    return datamodule, module


def train(cfg: DictConfig) -> dict[str, Any]:
    """One training run; returns the metrics written to ``metrics.json``."""
    out = _output_dir(cfg)
    if cfg.get("cpu_threads"):
        torch.set_num_threads(int(cfg.cpu_threads))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module = build(cfg)
    datamodule.setup("fit")  # decode the data now: a bad data root fails before the trainer starts
    log.info(
        "data=%s train/val/test=%d/%d/%d, model=%s (%s parameters)",
        datamodule.name,
        len(datamodule.split("train")[1]),
        len(datamodule.split("val")[1]),
        len(datamodule.split("test")[1]),
        type(module.net).__name__,
        f"{sum(p.numel() for p in module.net.parameters()):,}",
    )
    history = EpochHistory(out)
    pruning = trial_pruning()  # a trial of an Optuna search: report val/acc per epoch, maybe stop
    loggers = _instantiate_dict(cfg.get("logger"))
    callbacks = attach_writers([*_instantiate_dict(cfg.get("callbacks")), history])
    callbacks += [pruning] if pruning is not None else []
    if not loggers:  # LearningRateMonitor refuses to run without a logger; history.csv has the lr
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_time = time.perf_counter() - start

    best_val = trainer.callback_metrics.get("val/acc_best")  # test() clears callback_metrics
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    test_metrics: dict[str, float] = {}
    pruned = pruning is not None and pruning.pruned
    if cfg.get("test", True) and not pruned:  # a pruned trial is not worth a test pass
        results = trainer.test(
            module, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True
        )
        test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}

    metrics: dict[str, Any] = {
        "status": "pruned" if pruned else "diverged" if module.diverged else "ok",
        **{k: test_metrics.get(k, math.nan) for k in METRIC_KEYS},
        "val/acc_best": float(best_val) if best_val is not None else math.nan,
        "best_epoch": history.best_epoch(),
        "epochs": len(history.rows),
        "params": sum(p.numel() for p in module.net.parameters()),
        "train_time_s": round(train_time, 3),
        "seed": cfg.seed,
        "data": datamodule.name,
        "model": type(module.net).__name__,
        "checkpoint": best_path,
    }
    if module.diverged:
        metrics["diverged"] = module.diverged
    if pruned:
        metrics["pruned_after_epoch"] = pruning.pruned_at
    write_json(out / "metrics.json", metrics)
    log.info(
        "metrics: %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    )
    log.info("run directory: %s", out)
    return metrics


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run(cfg: DictConfig) -> float | None:
    """Hydra task: train, then return ``cfg.optimized_metric`` for sweepers.

    A bad config or data ends a single run with one line on stderr and exit code 1.
    In a multirun a failing job writes ``metrics.json`` with ``status: failed`` and
    its error, and the sweep goes on to the next job.
    """
    quiet_warnings()
    out = _output_dir(cfg)
    try:
        print_config_tree(cfg, save_to=out / "config_tree.log")
        metrics = train(cfg)
    except MnistlabError as err:
        log.error("%s", err)
        write_json(out / "metrics.json", {"status": "failed", "error": str(err)})
        if _is_multirun():
            return math.nan
        sys.exit(f"error: {err}")
    except Exception as err:
        if not _is_multirun():
            raise
        log.exception("job failed; the sweep goes on")
        (out / "error.log").write_text(traceback.format_exc())
        write_json(
            out / "metrics.json", {"status": "failed", "error": f"{type(err).__name__}: {err}"}
        )
        return math.nan
    finally:
        _finish_wandb()
    value = metrics.get(cfg.get("optimized_metric") or "val/acc_best")
    return float(value) if value is not None else None


def _finish_wandb() -> None:
    """One W&B run per job: close the current one before the next job of a sweep starts."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
