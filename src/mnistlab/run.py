"""One run: build (factory) -> fit -> test -> metrics.json. Called by the root train.py."""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from mnistlab.callbacks.history import EpochHistory
from mnistlab.config import check_accelerator, unwritable_reason, validate
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.factory import build, build_callbacks, build_loggers, build_trainer
from mnistlab.files import write_json
from mnistlab.jobs import decided_by_rank_zero, is_follower, job_devices
from mnistlab.loggers import (
    continue_csv_logs,
    flat_config,
    log_config,
    log_final,
    watch_model,
)
from mnistlab.resume import (
    FolderTaken,
    check_checkpoint_fits,
    config_id,
    plan_job,
)
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


def _resume_from(cfg: DictConfig) -> tuple[str | None, dict[str, Any]]:
    """``cfg.ckpt_path`` checked (exists, is mnistlab's, same config) and what it holds."""
    path = cfg.get("ckpt_path")
    if not path:
        return None, {}
    from mnistlab.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(path)
    check_checkpoint_fits(checkpoint, cfg, path)
    return str(path), {"epoch": checkpoint.get("epoch"), "step": checkpoint.get("global_step")}


def train(cfg: DictConfig) -> dict[str, Any]:
    """One training run; returns the metrics written to ``metrics.json``.

    With ``ckpt_path`` the run continues that checkpoint's run (same config only): weights,
    optimizer, schedule, epoch, random state, data order and history go on where they stopped.
    """
    out = _output_dir(cfg)
    validate(cfg)  # before anything is seeded, built or loaded
    check_accelerator(cfg)
    resume, resumed_at = _resume_from(cfg)
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
    if resume:
        continue_csv_logs(loggers)
    params = flat_config(cfg)
    log_config(loggers, params)
    watch_model(loggers, module.net)
    extra = [history, *([pruning] if pruning is not None else [])]
    callbacks = build_callbacks(cfg, extra=extra, loggers=bool(loggers))
    trainer = build_trainer(cfg, callbacks, loggers, **job_devices(cfg))
    if hasattr(trainer.strategy, "child_overrides"):  # DDP: ranks > 0 resume what rank 0 resumes
        trainer.strategy.child_overrides = [f"ckpt_path={resume}"] if resume else []
    if resume:
        log.info(
            "resuming from %s (after epoch %s, step %s)",
            resume,
            resumed_at["epoch"],
            resumed_at["step"],
        )

    try:
        outcome = _fit_and_test(cfg, trainer, module, datamodule, pruning, resume)
    finally:
        if hasattr(trainer.strategy, "finish_job"):  # DDP: the next job starts its own group
            trainer.strategy.finish_job()
    metrics = _metrics(cfg, outcome, module, datamodule, history)
    if resume:
        metrics["resumed_from"] = resume
        metrics["resumed_at_step"] = resumed_at["step"]
    if not trainer.is_global_zero:  # DDP: rank 0 writes the run's results, once
        return metrics
    write_json(out / "metrics.json", metrics)
    log_final(loggers, params, metrics)
    log.info(
        "metrics: %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    )
    log.info("run directory: %s", out)
    return metrics


def _fit_and_test(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: Any,
    datamodule: Any,
    pruning: Any,
    resume: str | None,
) -> dict[str, Any]:
    """Fit (from ``resume`` when set), then test the best checkpoint unless the run diverged
    or was pruned; returns train time, best checkpoint, test metrics and whether it was pruned."""
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    train_time = time.perf_counter() - start
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
    return {
        "train_time": train_time,
        "best_path": best_path,
        "test_metrics": test_metrics,
        "pruned_at": pruning.pruned_at if pruned else None,
        "val_acc_best": trainer.callback_metrics.get("val/acc_best"),
    }


def _metrics(
    cfg: DictConfig,
    outcome: dict[str, Any],
    module: Any,
    datamodule: Any,
    history: EpochHistory,
) -> dict[str, Any]:
    """What ``metrics.json`` holds."""
    test_metrics = outcome["test_metrics"]
    pruned = outcome["pruned_at"] is not None
    best_val = history.best_value()  # every epoch's, the ones before a resume included
    if math.isnan(best_val) and outcome["val_acc_best"] is not None:
        best_val = float(outcome["val_acc_best"])
    metrics: dict[str, Any] = {
        "status": "pruned" if pruned else "diverged" if module.diverged else "ok",
        **{k: test_metrics.get(k, math.nan) for k in METRIC_KEYS},
        "test/n_samples": int(test_metrics.get("test/n_samples", 0)),
        "val/acc_best": best_val,
        "best_epoch": history.best_epoch(),
        "epochs": len(history.rows),
        "params": sum(p.numel() for p in module.net.parameters()),
        "train_time_s": round(outcome["train_time"], 3),
        "seed": cfg.seed,
        "data": datamodule.name,
        "model": type(module.net).__name__,
        "checkpoint": outcome["best_path"],
        "config_id": config_id(cfg),  # what a re-run sweep compares before skipping this job
        "overrides": _task_overrides(),
    }
    if module.diverged:
        metrics["diverged"] = module.diverged
    if pruned:
        metrics["pruned_after_epoch"] = outcome["pruned_at"]
    return metrics


def _task_overrides() -> list[str]:
    """The job's own command-line overrides (what a person re-types to repeat it)."""
    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _job_label() -> str:
    """``job 3_model=mlp,seed=1`` (its folder) in a sweep, ``this run`` otherwise."""
    if not _is_multirun():
        return "this run"
    runtime = HydraConfig.get().runtime
    return f"job {Path(str(runtime.output_dir)).name}"


def run(cfg: DictConfig) -> float | None:
    """Hydra task: train, then return ``cfg.optimized_metric`` for sweepers.

    A bad config or data ends a single run with one line on stderr and exit code 1.
    In a multirun a failing job writes ``metrics.json`` with ``status: failed`` and
    its error, and the sweep goes on to the next job. A job whose folder already holds its
    finished result is skipped; one that was stopped continues from its ``last.ckpt``
    (:func:`mnistlab.resume.plan_job`).
    """
    quiet_warnings()
    try:
        out = _output_dir(cfg)
    except MnistlabError as err:
        sys.exit(f"error: {err}")
    writer = not is_follower()  # ranks > 0 of a DDP job train their share and write nothing
    try:
        if not decided_by_rank_zero():
            done = plan_job(cfg, out)
            if done is not None:
                return _skipped(cfg, done)
        if writer:
            print_config_tree(cfg, save_to=out / "config_tree.log")
        metrics = train(cfg)
    except SIGTERMException:  # Lightning's answer to SIGTERM (kill, a scheduler): exits 0
        log.warning(
            "%s was stopped (SIGTERM) before it finished; %s", _job_label(), _resume_hint(out)
        )
        raise SystemExit(128 + signal.SIGTERM) from None  # the shell's status of a TERM kill
    except MnistlabError as err:
        log.error("%s", err)
        if writer and not isinstance(err, FolderTaken):  # never overwrite a finished result
            write_json(out / "metrics.json", {"status": "failed", "error": str(err)})
        if _is_multirun():
            return math.nan
        sys.exit(f"error: {err}")
    except Exception as err:
        if not _is_multirun():
            raise
        log.exception("job failed; the sweep goes on")
        if writer:
            (out / "error.log").write_text(traceback.format_exc())
            write_json(
                out / "metrics.json", {"status": "failed", "error": f"{type(err).__name__}: {err}"}
            )
        return math.nan
    finally:
        _finish_wandb()
    if metrics["status"] == "diverged" and not _is_multirun():
        print(
            f"Training diverged ({_divergence(metrics)}): a result, recorded as status "
            f"'diverged' in {out / 'metrics.json'}.",
            flush=True,
        )
    value = metrics.get(cfg.get("optimized_metric") or "val/acc_best")
    return float(value) if value is not None else None


def _resume_hint(out: Path) -> str:
    if _is_multirun():
        return "run the same command again to continue it from its last.ckpt"
    return f"continue it with the same overrides and ckpt_path={out / 'checkpoints' / 'last.ckpt'}"


def _divergence(metrics: dict[str, Any]) -> str:
    info = metrics.get("diverged") or {}
    return f"train/loss={info.get('loss')} at epoch {info.get('epoch')}, step {info.get('step')}"


def _skipped(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """A job found finished: say so, leave its files alone, hand its value to the sweeper."""
    status = metrics.get("status")
    acc = metrics.get("test/acc")
    shown = f", test/acc {acc:.4f}" if isinstance(acc, (int, float)) else ""
    log.info("%s finished before (status %s%s): skipped", _job_label(), status, shown)
    value = metrics.get(cfg.get("optimized_metric") or "val/acc_best")
    return float(value) if isinstance(value, (int, float)) else math.nan


def _finish_wandb() -> None:
    """One W&B run per job: close the current one before the next job of a sweep starts."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
