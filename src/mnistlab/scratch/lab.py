"""How a hand-written network trains in the lab: optimizer mapping, refusals, the manual step.

``ClassifierModule`` trains a net whose ``computes_own_gradients`` is true (the
:class:`~mnistlab.scratch.network.ScratchMLP`) with Lightning's manual optimization: the net
computes loss and gradients by hand, this module hands the gradients to the callbacks that
read them (gradient norms, neuron traces), then the hand-written optimizer steps and the
learning-rate schedulers follow. Everything the hand-written engine lacks is refused with
one :class:`~mnistlab.errors.ConfigError` line before any data is loaded.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import OmegaConf
from torch.optim.lr_scheduler import ReduceLROnPlateau

from mnistlab.errors import ConfigError
from mnistlab.scratch.optimizers import HAND_WRITTEN, HandOptimizer

#: the conf/optimizer choices that select a hand-written optimizer
OPTIMIZER_CHOICES = "sgd, momentum, nesterov, rmsprop, adagrad, adam, adamw, nadam"
#: Lightning precisions the hand-written step handles (16-mixed needs a gradient scaler)
PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed")


def computes_own_gradients(net: Any) -> bool:
    """True for nets trained by their own backward pass (no autograd)."""
    return bool(getattr(net, "computes_own_gradients", False))


def hand_written_optimizer(
    factory: Callable[..., torch.optim.Optimizer],
) -> Callable[..., HandOptimizer]:
    """The hand-written counterpart of a ``torch.optim`` partial (``conf/optimizer``), same options.

    Raises :class:`ConfigError` for an optimizer or an option that is not written by hand.
    """
    args: tuple[Any, ...] = ()
    keywords: dict[str, Any] = {}
    func: Any = factory
    if isinstance(factory, functools.partial):
        func, args, keywords = factory.func, factory.args, dict(factory.keywords)
    if isinstance(func, type) and issubclass(func, HandOptimizer):
        return factory
    hand = HAND_WRITTEN.get(func)
    if hand is None:
        name = getattr(func, "__qualname__", repr(func))
        raise ConfigError(
            f"optimizer {name} is not written by hand for model=scratch_mlp; "
            f"choose optimizer= one of: {OPTIMIZER_CHOICES}"
        )
    accepted = [p for p in inspect.signature(hand).parameters if p != "params"]
    for key, value in keywords.items():
        if key not in accepted:
            raise ConfigError(
                f"optimizer.{key}={value!r} is not written by hand in mnistlab.scratch "
                f"{hand.__name__} (its options: {', '.join(accepted)}); remove it or use model=mlp"
            )
    return functools.partial(hand, *args, **keywords)


def check_module_options(l1: float = 0.0, compile: bool = False) -> None:
    """Refuse the ``module.*`` options the hand-written training step does not implement."""
    if l1:
        raise ConfigError(
            f"module.l1={l1} is not written by hand for model=scratch_mlp; "
            "set module.l1=0 (L2 works: optimizer.weight_decay) or use model=mlp"
        )
    if compile:
        raise ConfigError(
            "module.compile=true does not apply to model=scratch_mlp (its training step is "
            "hand-written, not a graph to compile); set module.compile=false"
        )


def check_trainer_for_model(cfg: Any) -> None:
    """:func:`check_trainer_options` when ``cfg.model`` names a net that computes its own gradients."""
    target = OmegaConf.select(cfg, "model._target_", default=None)
    try:
        model_class = hydra.utils.get_object(target) if target else None
    except Exception:  # an unknown target fails later, with instantiation's own message
        return
    if computes_own_gradients(model_class):
        check_trainer_options(cfg.get("trainer") or {})


def check_trainer_options(trainer: Any) -> None:
    """Refuse ``trainer.*`` options Lightning applies only to autograd training (``trainer``: its config)."""
    get = trainer.get if hasattr(trainer, "get") else lambda k, d=None: getattr(trainer, k, d)
    clip = get("gradient_clip_val", None)
    if clip:
        raise ConfigError(
            f"trainer.gradient_clip_val={clip}: gradient clipping is not written by hand for "
            "model=scratch_mlp; set trainer.gradient_clip_val=null or use model=mlp"
        )
    accumulate = get("accumulate_grad_batches", 1)
    if accumulate not in (None, 1):
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate}: gradient accumulation is not "
            "written by hand for model=scratch_mlp; remove it or use model=mlp"
        )
    precision = get("precision", "32-true")
    if str(precision) not in PRECISIONS:
        raise ConfigError(
            f"trainer.precision={precision} is not supported by model=scratch_mlp "
            f"(no gradient scaler by hand); choose one of: {', '.join(PRECISIONS[::2])}"
        )


def after_hand_backward(module: L.LightningModule) -> None:
    """Run the callbacks' ``on_after_backward``: what ``loss.backward()`` would trigger.

    Diagnostics (gradient norms, per-neuron traces) read ``param.grad`` there, which the
    hand-written backward pass has just filled.
    """
    trainer = module.trainer
    for callback in trainer.callbacks:
        callback.on_after_backward(trainer, module)


def step_schedulers(module: L.LightningModule, interval: str) -> None:
    """Step the learning-rate schedulers of ``interval`` (Lightning leaves this to manual optimization).

    ``ReduceLROnPlateau`` gets the epoch's value of ``module.hparams.scheduler_monitor``
    (e.g. ``val/acc``), as Lightning gives it under automatic optimization.
    """
    trainer = module.trainer
    for config in trainer.lr_scheduler_configs:
        if config.interval != interval:
            continue
        if isinstance(config.scheduler, ReduceLROnPlateau):
            monitor = module.hparams.get("scheduler_monitor")
            value = trainer.callback_metrics.get(monitor) if monitor else None
            if value is None:
                raise ConfigError(
                    f"scheduler.monitor={monitor!r}: ReduceLROnPlateau needs a metric logged "
                    f"every epoch, e.g. val/acc (logged now: {', '.join(trainer.callback_metrics)})"
                )
            config.scheduler.step(value)
        else:
            config.scheduler.step()
