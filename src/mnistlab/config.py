"""Config plumbing: OmegaConf resolvers used by conf/, and checks run before any work."""

from __future__ import annotations

import math
import os
import re

from omegaconf import DictConfig, OmegaConf

from mnistlab.errors import (
    ConfigError,
    in_range,
    positive_int,
    positive_number,
)
from mnistlab.optim import frac_epochs

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+\-\[\]]+")


def dir_suffix(override_dirname: str, max_len: int = 120) -> str:
    """``_<overrides>`` made safe for a directory name ('' when there are none)."""
    if not override_dirname:
        return ""
    name = _UNSAFE.sub("-", str(override_dirname))
    return "_" + (name if len(name) <= max_len else name[: max_len - 3] + "...")


def run_name(override_dirname: str) -> str:
    return dir_suffix(override_dirname)[1:] or "defaults"


def sweep_name(mode: object, sweep_dir: str) -> str:
    """Group name of a run: the sweep directory for multirun jobs, ``single`` otherwise."""
    return str(sweep_dir).replace("/", "_") if "MULTIRUN" in str(mode) else "single"


def cpu_share(n_jobs: int | str, cores: int | None = None) -> int:
    """Torch threads per job when ``n_jobs`` jobs share the machine (joblib: -1 = one per core)."""
    cores = cores or os.cpu_count() or 1
    n = int(n_jobs)
    jobs = cores + 1 + n if n < 0 else n  # joblib: -1 = all cores, -2 = all but one
    return max(1, cores // max(1, min(jobs, cores)))


def register_resolvers() -> None:
    """Register the resolvers conf/ uses (idempotent; call before composing configs)."""
    for name, fn in {
        "dir_suffix": dir_suffix,
        "run_name": run_name,
        "sweep_name": sweep_name,
        "frac_epochs": frac_epochs,
        "cpu_share": cpu_share,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def validate(cfg: DictConfig) -> None:
    """Checks no constructor makes before training starts (the rest fail in constructors).

    Each failure is one :class:`ConfigError` line naming the value and what is allowed.
    """
    lr = OmegaConf.select(cfg, "optimizer.lr")
    positive_number(lr, "optimizer.lr", hint=" (e.g. optimizer.lr=0.001)")
    epochs = OmegaConf.select(cfg, "trainer.max_epochs")
    if epochs != -1:  # -1: Lightning's "until stopped"
        positive_int(epochs, "trainer.max_epochs")
    wd = OmegaConf.select(cfg, "optimizer.weight_decay", default=0.0)
    in_range(wd, "optimizer.weight_decay", 0.0, math.inf)
    from mnistlab.scratch.lab import check_trainer_for_model

    check_trainer_for_model(cfg)  # hand-written backprop: before Lightning refuses mid-start
    metric = cfg.get("optimized_metric")
    if metric and not re.fullmatch(r"(train|val|test)/\w+", str(metric)):
        raise ConfigError(
            f"optimized_metric={metric!r} must name a logged metric such as val/acc_best"
        )
