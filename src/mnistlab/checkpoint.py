"""Rebuild a trained model from a checkpoint alone: its stored config, then its weights.

Checkpoints written by ``train.py`` carry the resolved run config
(``checkpoint["mnistlab_config"]``), so eval and predict need no experiment
flags. Loading uses ``torch.load(weights_only=True)``: a checkpoint is data,
not trusted code.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from mnistlab.classifier_module import ClassifierModule
from mnistlab.data import MNISTDataModule
from mnistlab.data.datamodule import DATA_ROOT_ENV
from mnistlab.errors import ConfigError
from mnistlab.factory import build


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's contents on the CPU; one clear error for a missing, foreign or unsafe file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"checkpoint {path} does not exist; pass a .ckpt file such as <run dir>/checkpoints/best.ckpt"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused, truncated file, not a torch file
        raise ConfigError(f"checkpoint {path} {_load_failure(err)}") from None
    if (
        not isinstance(checkpoint, dict)
        or not checkpoint.get("mnistlab_config")
        or "state_dict" not in checkpoint
    ):
        raise ConfigError(
            f"checkpoint {path} has no mnistlab_config: it was not written by mnistlab's train.py "
            "(only those carry the config needed to rebuild the model)"
        )
    return checkpoint


def _load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in our words: torch's own message ends in
    advice to load with weights_only=False, i.e. to run whatever code the file holds."""
    text = str(err)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe:
        return (
            f"holds a Python object ({unsafe.group(1)}) that a safe load (weights_only=True) "
            "refuses: mnistlab checkpoints hold only tensors and plain data, so this file was "
            "not written by mnistlab's train.py or was altered; it is not loaded"
        )
    if isinstance(err, pickle.UnpicklingError) and "Weights only load failed" in text:
        detail = "its data cannot be read safely"
    else:
        first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        detail = first.split(". ")[0][:120]
    return (
        f"is truncated, damaged or not a PyTorch checkpoint ({detail}); "
        "use the .ckpt written by train.py, e.g. <run dir>/checkpoints/best.ckpt"
    )


def checkpoint_config(checkpoint: dict[str, Any], overrides: Sequence[str] = ()) -> DictConfig:
    """The run's config with ``key=value`` overrides applied (each key must exist in it).

    ``data.root``: an override wins; else the stored root if it exists here; else
    ``$MNISTLAB_DATA_ROOT`` when set (a checkpoint copied from another machine).
    """
    cfg = OmegaConf.create(checkpoint["mnistlab_config"])
    keys = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} must look like key=value, e.g. data.root=../shared/data"
            )
        if OmegaConf.select(cfg, key, default="\0missing") == "\0missing":
            raise ConfigError(f"override {item!r}: the checkpoint's config has no key {key!r}")
        OmegaConf.update(cfg, key, _parse(value), merge=False)
        keys.append(key)
    root = OmegaConf.select(cfg, "data.root")
    if (
        "data.root" not in keys
        and os.environ.get(DATA_ROOT_ENV)
        and not (root and Path(root).expanduser().is_dir())
    ):
        cfg.data.root = os.environ[DATA_ROOT_ENV]
    return cfg


def _parse(value: str) -> Any:
    """A command-line value as YAML reads it (numbers, booleans, null, lists); else the string."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def load_model(
    path: str | os.PathLike, overrides: Sequence[str] = ()
) -> tuple[DictConfig, MNISTDataModule, ClassifierModule]:
    """Config, data module (not yet set up) and module with the checkpoint's weights, in eval mode."""
    checkpoint = read_checkpoint(path)
    cfg = checkpoint_config(checkpoint, overrides)
    datamodule, module = build(cfg)
    missing, unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"checkpoint {path} does not fit the model its config builds "
            f"(missing {len(missing)} tensors, e.g. {missing[:2]}; unexpected {len(unexpected)}, e.g. {unexpected[:2]})"
        )
    module.eval()
    return cfg, datamodule, module
