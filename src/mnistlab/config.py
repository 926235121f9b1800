"""Config plumbing: OmegaConf resolvers used by conf/, and checks run before any work."""

from __future__ import annotations

import re
from numbers import Number

from omegaconf import DictConfig, OmegaConf

from mnistlab.errors import ConfigError
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


def register_resolvers() -> None:
    """Register the resolvers conf/ uses (idempotent; call before composing configs)."""
    for name, fn in {
        "dir_suffix": dir_suffix,
        "run_name": run_name,
        "sweep_name": sweep_name,
        "frac_epochs": frac_epochs,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def _positive_number(value: object) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool) and value > 0


def validate(cfg: DictConfig) -> None:
    """Checks no constructor makes before training starts (the rest fail in constructors).

    Each failure is one :class:`ConfigError` line naming the value and what is allowed.
    """
    lr = OmegaConf.select(cfg, "optimizer.lr")
    if not _positive_number(lr):
        raise ConfigError(f"optimizer.lr={lr} must be a positive number (e.g. optimizer.lr=0.001)")
    epochs = OmegaConf.select(cfg, "trainer.max_epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or (epochs < 1 and epochs != -1):
        raise ConfigError(f"trainer.max_epochs={epochs} must be a whole number >= 1")
    wd = OmegaConf.select(cfg, "optimizer.weight_decay", default=0.0)
    if not isinstance(wd, Number) or wd < 0:
        raise ConfigError(f"optimizer.weight_decay={wd} must be >= 0")
    metric = cfg.get("optimized_metric")
    if metric and not re.fullmatch(r"(train|val|test)/\w+", str(metric)):
        raise ConfigError(f"optimized_metric={metric!r} must name a logged metric such as val/acc_best")
