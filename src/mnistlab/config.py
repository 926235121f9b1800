"""Config plumbing: OmegaConf resolvers used by conf/, and checks run before any work."""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mnistlab.errors import (
    ConfigError,
    in_range,
    one_of,
    positive_int,
    positive_number,
    whole_number,
)
from mnistlab.optim import frac_epochs

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+\-\[\]]+")
#: longest ``_<overrides>`` part of a folder name (file systems allow 255 bytes per name)
DIR_SUFFIX_MAX = 120
#: override keys a shortened folder name always keeps
KEEP_IN_NAME = ("seed",)


def split_overrides(override_dirname: str) -> list[str]:
    """``a=1,b=[2,3],c=x`` -> ``["a=1", "b=[2,3]", "c=x"]`` (commas inside brackets stay)."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(override_dirname):
        if char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            items.append(override_dirname[start:i])
            start = i + 1
    items.append(override_dirname[start:])
    return [item for item in items if item]


def _short_item(item: str) -> str:
    """``trainer.max_epochs=3`` -> ``max_epochs=3``: the last part of the key, made name-safe."""
    key, sep, value = item.partition("=")
    return _UNSAFE.sub("-", key.rsplit(".", 1)[-1] + sep + value)


def dir_suffix(override_dirname: str, max_len: int = DIR_SUFFIX_MAX) -> str:
    """``_<overrides>`` as a readable, unique folder-name part ('' when there are none).

    Short, safe override lists are kept as they are (``_model=cnn,seed=1``). A list that is
    too long, or holds characters a folder name cannot, is shortened instead of cut: keys lose
    their group (``trainer.max_epochs`` -> ``max_epochs``), items that do not fit are left out
    (``seed`` never is), and ``~`` plus a hash of the full list keeps every name unique.
    """
    if not override_dirname:
        return ""
    text = str(override_dirname)
    name = _UNSAFE.sub("-", text)
    if len(name) <= max_len and name == text:
        return "_" + name
    tag = "~" + hashlib.sha1(text.encode()).hexdigest()[:6]
    items = [_short_item(item) for item in split_overrides(text)]
    keep = [item.partition("=")[0] in KEEP_IN_NAME for item in items]
    room = max_len - len(tag) - sum(len(item) + 1 for item, k in zip(items, keep, strict=True) if k)
    for i, item in enumerate(items):
        if not keep[i] and len(item) + 1 <= room:
            keep[i], room = True, room - len(item) - 1
    return "_" + ",".join(item for item, k in zip(items, keep, strict=True) if k) + tag


def run_name(override_dirname: str) -> str:
    """A run's name for loggers: its folder-name overrides, or ``defaults``."""
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


#: Hydra's own keys of an instantiable section (not arguments of the target)
_HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


#: keys of conf/scheduler/*.yaml that mnistlab reads itself (factory.build_scheduler_factory
#: pops them); the rest are the scheduler's own arguments
SCHEDULER_KEYS = ("interval", "monitor")


def check_keys(
    cfg: DictConfig, section: str, passed: Iterable[str] = (), own: Iterable[str] = ()
) -> None:
    """Every key of ``cfg.<section>`` is an argument of its ``_target_``; else one line
    listing the valid keys. ``passed``: arguments mnistlab fills in itself (not for the
    user); ``own``: keys mnistlab reads itself. Targets taking ``**kwargs`` are not checked.
    """
    node = OmegaConf.select(cfg, section)
    if not isinstance(node, DictConfig) or not node.get("_target_"):
        return
    from hydra.utils import get_object

    try:
        target = get_object(str(node._target_))
        signature = inspect.signature(target)
    except Exception:  # an unknown target fails when it is instantiated, with its own message
        return
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    names = [p.name for p in params if p.name != "self" and p.kind is not p.VAR_POSITIONAL]
    hidden = set(passed)
    valid = [n for n in [*names, *own] if n not in hidden]
    for key in node:
        if key in _HYDRA_KEYS or key in valid:
            continue
        if key in hidden:
            raise ConfigError(
                f"{section}.{key} is set by mnistlab itself; remove it from the config"
            )
        raise ConfigError(
            f"{section}.{key} is not an option of {node._target_}; valid keys: {', '.join(valid)}"
        )


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one: one line (checked by train only: eval and
    predict of a GPU-trained checkpoint choose their own device)."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
    if str(accelerator) in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator!r} but this machine has no usable CUDA GPU; "
                "use trainer=cpu or trainer=auto"
            )


def validate(cfg: DictConfig) -> None:
    """Checks no constructor makes before training starts (the rest fail in constructors).

    Each failure is one :class:`ConfigError` line naming the value and what is allowed.
    """
    if "seed" in cfg:
        whole_number(cfg.seed, "seed", 0, hint=" (e.g. seed=42)")
    threads = cfg.get("cpu_threads")
    if threads is not None:
        positive_int(threads, "cpu_threads", hint=" or null (torch's default: one per core)")
    check_keys(cfg, "optimizer", passed=("params",))
    check_keys(cfg, "scheduler", passed=("optimizer",), own=SCHEDULER_KEYS)
    check_keys(cfg, "model", passed=("num_classes", "input_shape"))
    scheduler = OmegaConf.select(cfg, "scheduler")
    monitor = OmegaConf.select(cfg, "scheduler.monitor", default=None)
    if isinstance(scheduler, DictConfig) and scheduler.get("_target_") and monitor is not None:
        from mnistlab.classifier_module import logged_metrics

        one_of(monitor, "scheduler.monitor", logged_metrics())
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


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be created and written to, or None when it can (creates it)."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".mnistlab-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        return err.strerror or type(err).__name__
    return None
