"""Evaluate a checkpoint on its data set's test split and regenerate the run's artifacts.

    python eval.py outputs/2026-11-21/12-00-00_model=cnn/checkpoints/best.ckpt
    python eval.py CKPT data.root=../shared/data --out /tmp/eval
    python eval.py CKPT data.dataset=fashion_mnist     # another data set's test split

The model is rebuilt from the config stored in the checkpoint (``key=value``
arguments override it) and the weights are loaded with ``weights_only=True``.
Writes ``metrics.json`` and ``artifacts/`` (the artifact callbacks the run was
configured with, or the default set) into ``--out`` (default ``<run dir>/eval``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from mnistlab.callbacks import (
    CalibrationArtifact,
    ConfusionMatrixArtifact,
    DataOverview,
    Evaluation,
    GradCAMArtifact,
    MisclassifiedGallery,
    PerClassArtifact,
    PredictionCards,
    ROCArtifact,
    TrainingCurves,
)
from mnistlab.checkpoint import load_model
from mnistlab.errors import MnistlabError
from mnistlab.utils import quiet_warnings, write_json

log = logging.getLogger("mnistlab.eval")

#: callbacks eval.py re-creates from the checkpoint's config (the others belong to training)
ARTIFACT_PACKAGE = "mnistlab.callbacks."


def run_dir_of(checkpoint: Path) -> Path:
    """``<run dir>`` of ``<run dir>/checkpoints/best.ckpt`` (else the checkpoint's folder)."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def default_artifacts(artifacts: Path, history: Path, cache_dir: str | None) -> list[L.Callback]:
    """The artifact callbacks of conf/callbacks/default.yaml, for checkpoints of runs that had none."""
    return [
        Evaluation(artifacts),
        ConfusionMatrixArtifact(artifacts),
        PerClassArtifact(artifacts),
        ROCArtifact(artifacts),
        GradCAMArtifact(artifacts),
        CalibrationArtifact(artifacts),
        MisclassifiedGallery(artifacts),
        PredictionCards(artifacts),
        TrainingCurves(artifacts, history),
        DataOverview(artifacts, cache_dir),
    ]


def artifact_callbacks(cfg: DictConfig, artifacts: Path, history: Path) -> list[L.Callback]:
    """The run's own artifact callbacks (same options), writing into ``artifacts`` instead."""
    section = OmegaConf.select(cfg, "callbacks") or {}
    chosen = []
    for entry in section.values():
        if entry is None or not str(entry.get("_target_", "")).startswith(ARTIFACT_PACKAGE):
            continue
        entry = OmegaConf.to_container(entry)
        entry["dirpath"] = str(artifacts)
        chosen.append(hydra.utils.instantiate(entry))
    if not any(isinstance(cb, Evaluation) for cb in chosen):
        return default_artifacts(artifacts, history, None)
    return chosen


def evaluate(
    checkpoint: str | Path,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    artifacts: bool = True,
    accelerator: str | None = None,
) -> dict[str, Any]:
    """Test ``checkpoint``; returns (and writes to ``<out>/metrics.json``) its test metrics."""
    checkpoint = Path(checkpoint)
    cfg, datamodule, module = load_model(checkpoint, overrides)
    out = Path(out) if out else run_dir_of(checkpoint) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    history = run_dir_of(checkpoint) / "history.csv"
    callbacks = artifact_callbacks(cfg, out / "artifacts", history) if artifacts else []
    if cfg.get("cpu_threads"):  # as in training: on a busy CPU, extra threads only spin
        torch.set_num_threads(int(cfg.cpu_threads))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    trainer_cfg = OmegaConf.to_container(cfg.trainer)
    trainer_cfg.update(
        devices=1, logger=False, enable_checkpointing=False, default_root_dir=str(out)
    )
    trainer_cfg.pop("strategy", None)  # one device: no data parallelism
    if accelerator:
        trainer_cfg["accelerator"] = accelerator
    trainer: L.Trainer = hydra.utils.instantiate(trainer_cfg, callbacks=callbacks)
    results = trainer.test(module, datamodule=datamodule, verbose=False)
    metrics: dict[str, Any] = {k: float(v) for k, v in (results[0] if results else {}).items()}
    metrics.update(
        checkpoint=str(checkpoint.resolve()),
        data=datamodule.name,
        test_images=len(datamodule.split("test")[1]),
    )
    write_json(out / "metrics.json", metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eval.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkpoint", help="a .ckpt written by train.py (e.g. <run dir>/checkpoints/best.ckpt)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="key=value changes to the stored config, e.g. data.root=DIR"
    )
    parser.add_argument("--out", help="output folder (default: <run dir>/eval)")
    parser.add_argument(
        "--no-artifacts", action="store_true", help="metrics only, no pictures and tables"
    )
    parser.add_argument(
        "--accelerator", help="cpu, gpu or auto (default: the run's trainer.accelerator)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_warnings()
    try:
        metrics = evaluate(
            args.checkpoint, args.overrides, args.out, not args.no_artifacts, args.accelerator
        )
    except MnistlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    shown = {k: v for k, v in metrics.items() if k.startswith("test/")}
    print(
        " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) and math.isfinite(v) else f"{k}={v}"
            for k, v in shown.items()
        )
    )
    print(
        f"results in {Path(args.out) if args.out else run_dir_of(Path(args.checkpoint)) / 'eval'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
