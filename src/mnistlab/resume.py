"""Resuming: a run from its checkpoint, a sweep job from its folder, a sweep from its jobs.

A run's *identity* is its resolved config without the keys that only say where it writes,
how it is shown or logged and how many threads it uses (:data:`RESUME_FREE`): two configs
with the same identity train the same model. A checkpoint is resumed only by a run of the
same identity; a sweep job skips its work only when its folder holds the finished result of
the same identity (``config_id`` in ``metrics.json``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mnistlab.errors import ConfigError

log = logging.getLogger("mnistlab")

#: statuses of a job whose result is final: a re-run of its sweep leaves it alone
FINISHED = ("ok", "diverged", "pruned")

#: keys (and everything under them) that may differ between a run and its resumption:
#: where it writes, how it is shown or logged, how many threads or which GPU it uses
RESUME_FREE = (
    "paths",
    "ckpt_path",
    "cpu_threads",
    "spread_gpus",
    "optimized_metric",
    "logger",
    "data.root",
    "data.download",
    "trainer.default_root_dir",
    "trainer.enable_progress_bar",
    "trainer.progress_bar_refresh_rate",
    "trainer.progress_log",
    "trainer.enable_model_summary",
    "callbacks.data_overview.cache_dir",
)
RUN_DIR = "<run dir>"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: list(node) if isinstance(node, tuple) else node}


def _free(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUME_FREE)


def identity(config: DictConfig | Mapping[str, Any], resolve: bool = True) -> dict[str, Any]:
    """The flat config that decides what a run computes (see the module docstring).

    Strings naming the run's own folder become ``<run dir>``: a job resumed from a copied
    folder is still the same job.
    """
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=resolve)
    flat = _flatten({k: v for k, v in config.items() if k != "hydra"})
    run_dir = flat.get("paths.output_dir")
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if _free(key):
            continue
        if isinstance(run_dir, str) and run_dir and isinstance(value, str):
            value = value.replace(run_dir, RUN_DIR)
        out[key] = value
    return out


def config_id(config: DictConfig | Mapping[str, Any]) -> str:
    """A short fingerprint of :func:`identity` (stored in ``metrics.json``)."""
    text = json.dumps(identity(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 3) -> str:
    """``model.hidden_sizes=[256, 128] there, [512] here; ...`` for the first ``limit`` keys."""
    keys = sorted(k for k in {*old, *new} if old.get(k, "<unset>") != new.get(k, "<unset>"))
    parts = [f"{k}={old.get(k, '<unset>')!r} there, {new.get(k, '<unset>')!r} here" for k in keys]
    more = f" (and {len(parts) - limit} more)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def check_checkpoint_fits(checkpoint: Mapping[str, Any], cfg: DictConfig, path: str | Path) -> None:
    """A checkpoint saved by a run of another config is refused with one line: what differs, and the fix."""
    saved = checkpoint.get("mnistlab_config")
    if not isinstance(saved, Mapping):
        raise ConfigError(
            f"ckpt_path={path} carries no mnistlab config: it was not written by mnistlab's "
            "train.py, so it cannot be resumed; drop ckpt_path to start a new run"
        )
    diff = differences(identity(saved), identity(cfg))
    if diff:
        raise ConfigError(
            f"ckpt_path={path} was saved by a run of another config ({diff}); resume it with "
            "that run's overrides (its .hydra/overrides.yaml), or drop ckpt_path to start a new run"
        )


def run_dir_of(checkpoint: str | Path) -> Path | None:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt`` or Lightning's
    ``<run>/hpc_ckpt_N.ckpt``), when it still holds the run's ``.hydra`` record."""
    path = Path(checkpoint).resolve()
    folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return folder if (folder / ".hydra").is_dir() else None


def resumable_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint to continue a run folder from: ``checkpoints/last.ckpt`` (end of
    the last epoch) or Lightning's ``hpc_ckpt_N.ckpt`` (saved when SLURM asked a job to stop)."""
    run_dir = Path(run_dir)
    candidates = [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")]
    found = [p for p in candidates if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """``metrics.json`` of a run folder, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class FolderTaken(ConfigError):
    """A run's folder holds the finished result of another config: it is kept, not overwritten."""


def plan_job(cfg: DictConfig, out: str | Path) -> dict[str, Any] | None:
    """Decide what a job does with what its folder already holds (a re-run sweep, a requeued
    SLURM job, a re-used ``hydra.run.dir``); returns the finished metrics to skip with, or None.

    - a finished result (:data:`FINISHED`) of the same config: skip (nothing is rewritten);
    - a finished result of another config: :class:`FolderTaken` (it is kept);
    - a checkpoint to continue (``last.ckpt``; a failed or stopped job): set ``cfg.ckpt_path``;
    - nothing: train from the start.

    A fresh single run's folder is new and empty, so this does nothing there.
    """
    out = Path(out)
    metrics = read_metrics(out)
    latest = resumable_checkpoint(out)
    if metrics is not None and metrics.get("status") in FINISHED:
        saved = metrics.get("config_id")
        if saved is None or saved == config_id(cfg):
            return metrics
        raise FolderTaken(
            f"{out} holds the finished result of a run of another config"
            f"{_differs_from(latest, cfg)}; it is kept: give this run its own folder "
            "(another hydra.sweep.dir or hydra.run.dir)"
        )
    if latest is not None and not cfg.get("ckpt_path"):
        checkpoint = _read(latest)
        saved = checkpoint.get("mnistlab_config") if checkpoint else None
        if not isinstance(saved, Mapping):
            log.warning("%s cannot be read (damaged?): %s starts over", latest, out)
            return None
        diff = differences(identity(saved), identity(cfg))
        if diff:
            raise ConfigError(
                f"{latest} was saved by a run of another config ({diff}); this folder belongs "
                "to another run: use another hydra.sweep.dir / hydra.run.dir, or delete the "
                "folder to start over"
            )
        log.info("%s was stopped before it finished: continuing it", out)
        with open_dict(cfg):
            cfg.ckpt_path = str(latest)
    return None


def _read(path: Path) -> dict[str, Any] | None:
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return checkpoint if isinstance(checkpoint, dict) else None


def _differs_from(checkpoint: Path | None, cfg: DictConfig) -> str:
    """`` (differs in: ...)`` from the folder's checkpoint config, when there is one."""
    saved = (_read(checkpoint) or {}).get("mnistlab_config") if checkpoint else None
    if not isinstance(saved, Mapping):
        return ""
    diff = differences(identity(saved), identity(cfg))
    return f" ({diff})" if diff else ""


def rng_state() -> dict[str, Any]:
    """The global random state of torch (CPU and CUDA), numpy and Python, as tensors and plain
    values (a checkpoint holding it still loads with ``torch.load(weights_only=True)``)."""
    import random

    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": int(version), "state": list(state), "gauss": gauss},
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what :func:`rng_state` saved (dropout masks continue where they stopped)."""
    import random

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    cuda = state.get("torch.cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached"],
        )
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
