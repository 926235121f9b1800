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

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from mnistlab.artifacts import registry
from mnistlab.artifacts.base import Artifact
from mnistlab.artifacts.evaluation import Evaluation, attach_writers
from mnistlab.artifacts.training_curves import TrainingCurves
from mnistlab.checkpoint import load_model
from mnistlab.errors import MnistlabError
from mnistlab.factory import build_trainer, instantiate
from mnistlab.files import write_json
from mnistlab.utils import quiet_warnings

log = logging.getLogger("mnistlab.eval")


def run_dir_of(checkpoint: Path) -> Path:
    """``<run dir>`` of ``<run dir>/checkpoints/best.ckpt`` (else the checkpoint's folder)."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def _redrawn(cls: type) -> bool:
    """Artifacts eval can draw again from a checkpoint: the test-set and training ones."""
    return isinstance(cls, type) and issubclass(cls, Artifact) and cls.kind != "diagnostic"


def _options(artifacts: Path, history: Path, cls: type[Artifact]) -> dict[str, Any]:
    options: dict[str, Any] = {"dirpath": str(artifacts)}
    if cls is TrainingCurves:
        options["history_path"] = str(history)
    return options


def default_artifacts(artifacts: Path, history: Path) -> list[L.Callback]:
    """Every registered test-set and training artifact with its defaults, for checkpoints of
    runs that had none (the data overview is drawn afresh: no cache)."""
    chosen: list[L.Callback] = [Evaluation(artifacts)]
    for cls in registry().values():
        if _redrawn(cls):
            chosen.append(cls(**_options(artifacts, history, cls)))
    return attach_writers(chosen)


def artifact_callbacks(cfg: DictConfig, artifacts: Path, history: Path) -> list[L.Callback]:
    """The run's own artifact callbacks (same options), writing into ``artifacts`` instead."""
    section = OmegaConf.select(cfg, "callbacks") or {}
    chosen: list[L.Callback] = []
    for entry in section.values():
        if entry is None or "_target_" not in entry:
            continue
        cls = get_class(str(entry["_target_"]))
        if cls is not Evaluation and not _redrawn(cls):
            continue
        entry = OmegaConf.to_container(entry)
        entry.update(
            _options(artifacts, history, cls)
            if cls is not Evaluation
            else {"dirpath": str(artifacts)}
        )
        chosen.append(instantiate(entry))
    if not any(isinstance(cb, Evaluation) for cb in chosen):
        return default_artifacts(artifacts, history)
    return attach_writers(chosen)


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
    overrides: dict[str, Any] = dict(
        devices=1, enable_checkpointing=False, default_root_dir=str(out), strategy="auto"
    )  # one device: no data parallelism
    if accelerator:
        overrides["accelerator"] = accelerator
    trainer = build_trainer(cfg, callbacks, **overrides)
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
