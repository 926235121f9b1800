"""One run: build (factory) -> fit -> test -> metrics.json. Called by the root train.py."""

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
from omegaconf import DictConfig, OmegaConf

from mnistlab.callbacks.history import EpochHistory
from mnistlab.config import check_accelerator, unwritable_reason, validate
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.factory import build, build_callbacks, build_loggers, build_trainer
from mnistlab.files import write_json
from mnistlab.loggers import flat_config, log_config, log_final, watch_model
from mnistlab.search.pruning import trial_pruning
from mnistlab.utils import print_config_tree, quiet_warnings

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
    reason = unwritable_reason(path)
    if reason:
        raise ConfigError(
            f"paths.output_dir={path} cannot be written ({reason}); point hydra.run.dir "
            "(or paths.output_dir) at a writable folder"
        )
    return path


def train(cfg: DictConfig) -> dict[str, Any]:
    """One training run; returns the metrics written to ``metrics.json``."""
    out = _output_dir(cfg)
    validate(cfg)  # before anything is seeded, built or loaded
    check_accelerator(cfg)
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
    loggers = build_loggers(cfg)
    params = flat_config(cfg)
    log_config(loggers, params)
    watch_model(loggers, module.net)
    extra = [history, *([pruning] if pruning is not None else [])]
    callbacks = build_callbacks(cfg, extra=extra, loggers=bool(loggers))
    trainer = build_trainer(cfg, callbacks, loggers)

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_time = time.perf_counter() - start

    best_val = trainer.callback_metrics.get("val/acc_best")  # test() clears callback_metrics
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    test_metrics: dict[str, float] = {}
    pruned = pruning is not None and pruning.pruned
    if module.diverged:  # its weights are NaN: testing them would describe no model
        log.warning("not testing: training diverged, the weights are not a model")
    elif pruned:
        log.info("not testing: the search pruned this trial after epoch %s", pruning.pruned_at)
    elif cfg.get("test", True):
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
    log_final(loggers, params, metrics)
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
    try:
        out = _output_dir(cfg)
    except MnistlabError as err:
        sys.exit(f"error: {err}")
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
