"""Optimizer parameter groups and learning-rate schedules that need the run's length.

Optimizers and schedulers are Hydra ``_partial_`` objects from ``conf/optimizer``
and ``conf/scheduler``; this module only fills in what is known at fit time
(``auto`` step counts) and groups parameters for weight decay.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from mnistlab.errors import ConfigError

AUTO = "auto"


def parameter_groups(model: nn.Module, decay_norm_and_bias: bool = False) -> list[dict[str, Any]]:
    """Weights of linear/conv layers get weight decay; biases and norm scales only if asked.

    Decaying BatchNorm scales and biases fights normalization and is off by
    default, as in timm and most modern recipes.
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 or decay_norm_and_bias else no_decay).append(param)
    groups = [{"params": decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


#: torch optimizers whose fused kernel (one op for all parameters) runs on CPU and CUDA
FUSED_CAPABLE: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.SGD,
)
FUSED_DEVICES = ("cpu", "cuda")


def prefer_fused(
    factory: Callable[..., torch.optim.Optimizer], params: list[torch.Tensor]
) -> Callable[..., torch.optim.Optimizer]:
    """Ask for torch's fused kernel when the config leaves the implementation open.

    On CPU torch otherwise steps each parameter tensor in a Python loop (``foreach``
    is its default only on CUDA): for a small MLP that loop is a quarter of a step.
    An explicit ``optimizer.fused`` or ``optimizer.foreach`` is kept as written, and
    parameters on other devices (MPS, XLA) or of non-float types keep torch's default.
    """
    if not isinstance(factory, functools.partial) or factory.func not in FUSED_CAPABLE:
        return factory
    if factory.keywords.keys() & {"fused", "foreach", "differentiable"}:
        return factory
    if not params or not all(
        p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params
    ):
        return factory
    return functools.partial(factory, fused=True)


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """Linear warm-up from 0 over ``warmup_fraction`` of the steps, then cosine decay to ``min_lr_ratio``."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise ConfigError(f"scheduler.warmup_fraction={warmup_fraction} must be in [0, 1)")
    warmup = max(1, int(round(warmup_fraction * total_steps))) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def build_scheduler(
    factory: Callable[..., LRScheduler],
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    total_epochs: int,
    interval: str,
) -> LRScheduler:
    """Call the scheduler partial, replacing keyword values ``auto`` by the run's length.

    ``auto`` means the number of scheduler steps in the whole run: optimizer
    steps when ``interval=step``, epochs when ``interval=epoch``.
    """
    if interval not in ("step", "epoch"):
        raise ConfigError(f"scheduler.interval={interval!r} must be 'step' or 'epoch'")
    length = total_steps if interval == "step" else total_epochs
    if isinstance(factory, functools.partial):
        filled = {k: (length if v == AUTO else v) for k, v in factory.keywords.items()}
        factory = functools.partial(factory.func, *factory.args, **filled)
    return factory(optimizer)


def frac_epochs(max_epochs: int, fraction: float) -> int:
    """OmegaConf resolver ``${frac_epochs:${trainer.max_epochs},0.5}``: an epoch index from a fraction."""
    return max(1, int(round(int(max_epochs) * float(fraction))))
