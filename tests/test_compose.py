"""Every model x optimizer x scheduler x regularization combination builds and trains one step.

Hydra composition costs 0.1-0.5 s here, too slow for 3,584 full compositions.
The groups only meet through shared keys: regularization presets write model.*,
optimizer.* (weight decay), module.* and callbacks.*; schedulers read
optimizer.lr and the run's length. So:

* every (model, regularization) pair and every (optimizer, scheduler) pair goes
  through Hydra and ``mnistlab.run.build`` for real, callbacks included;
* every full 4-way combination is then assembled from those composed nodes
  (checked equal to Hydra's own composition below), built from them, and takes
  one optimizer step and one scheduler step on a fake batch.
"""

from __future__ import annotations

import copy
import functools
import itertools

import pytest
import torch
from conftest import CONF, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mnistlab.classifier_module import ClassifierModule
from mnistlab.errors import ConfigError
from mnistlab.factory import build, build_scheduler_factory

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (CONF / "scheduler").glob("*.yaml"))
REGULARIZATIONS = sorted(p.stem for p in (CONF / "regularization").glob("*.yaml"))
#: pairs the hand-written network refuses (dropout, batch norm, L1 are not written by hand)
REFUSED = {("scratch_mlp", r) for r in ("batchnorm", "combined", "dropout", "l1")}


def test_groups_offer_what_the_docs_promise() -> None:
    assert set(MODELS) >= {"softmax", "mlp", "resmlp", "dbsnet", "lenet", "cnn", "resnet"}
    assert set(OPTIMIZERS) >= {
        "sgd",
        "momentum",
        "nesterov",
        "adam",
        "adamw",
        "nadam",
        "rmsprop",
        "adagrad",
    }
    assert set(SCHEDULERS) >= {
        "none",
        "step",
        "multistep",
        "exponential",
        "cosine",
        "warmup_cosine",
        "onecycle",
        "plateau",
    }
    assert set(REGULARIZATIONS) >= {
        "none",
        "l1",
        "l2",
        "dropout",
        "batchnorm",
        "label_smoothing",
        "early_stopping",
        "combined",
    }


@functools.cache
def _composed(*overrides: str):
    return compose_config(list(overrides))


def _combination(model: str, optimizer: str, scheduler: str, regularization: str):
    cfg = _composed(f"model={model}", f"regularization={regularization}").copy()
    cfg.optimizer = _composed(
        f"optimizer={optimizer}", f"regularization={regularization}"
    ).optimizer
    cfg.scheduler = _composed(f"scheduler={scheduler}").scheduler
    return cfg


class _FakeTrainer:
    """The two things configure_optimizers reads from a Trainer."""

    estimated_stepping_batches = 100
    max_epochs = 3


def _configure(module: ClassifierModule):
    module.__dict__["_fake_trainer"] = _FakeTrainer()
    cls = type(module)
    original = cls.trainer
    cls.trainer = property(lambda self: self.__dict__.get("_fake_trainer"))  # type: ignore[assignment]
    try:
        return module.configure_optimizers()
    finally:
        cls.trainer = original


def _one_step(module: ClassifierModule) -> None:
    config = _configure(module)
    optimizer = config["optimizer"] if isinstance(config, dict) else config
    images = torch.randn(4, *module.net.input_shape)
    labels = torch.tensor([0, 1, 2, 3])
    before = [p.detach().clone() for p in module.net.parameters()]
    optimizer.zero_grad()
    if module.automatic_optimization:
        loss = module.criterion(module(images), labels)
        if module.hparams.l1:
            loss = loss + module.hparams.l1 * module.l1_penalty()
        loss.backward()
    else:  # mnistlab.scratch: the hand-written backward pass fills .grad
        hp = module.hparams
        loss, _ = module.net.loss_and_gradients(images, labels, hp.loss, hp.label_smoothing)
    optimizer.step()
    if isinstance(config, dict):
        lr_config = config["lr_scheduler"]
        lr_config["scheduler"].step(0.5) if module.hparams.scheduler_monitor else lr_config[
            "scheduler"
        ].step()
    assert torch.isfinite(loss)
    assert any(
        not torch.equal(b, p) for b, p in zip(before, module.net.parameters(), strict=True)
    ), "no parameter changed"


@pytest.mark.parametrize("model", MODELS)
def test_every_model_regularization_pair_builds_through_hydra(model: str) -> None:
    for regularization in REGULARIZATIONS:
        cfg = _composed(f"model={model}", f"regularization={regularization}")
        if (model, regularization) in REFUSED:
            with pytest.raises(ConfigError, match=r"^[^\n]*not written by hand[^\n]*$"):
                build(cfg)
            continue
        _, module = build(cfg)
        _one_step(module)
        callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
        assert ("early_stopping" in cfg.callbacks) == (
            regularization in ("early_stopping", "combined")
        )
        assert callbacks


def test_every_optimizer_scheduler_pair_builds_through_hydra() -> None:
    for optimizer, scheduler in itertools.product(OPTIMIZERS, SCHEDULERS):
        _, module = build(_composed(f"optimizer={optimizer}", f"scheduler={scheduler}"))
        _one_step(module)


# dbsnet is MLP with Ciresan's sizes (12M parameters); the full-size net goes through
# Hydra and build() in the pair test above, the 512-way product uses the same class smaller.
PRODUCT_OVERRIDES = {"dbsnet": ["model.hidden_sizes=[64,32]"]}


@pytest.mark.parametrize("model", MODELS)
def test_every_full_combination_takes_a_step(model: str) -> None:
    optimizers = {
        (o, r): instantiate(_composed(f"optimizer={o}", f"regularization={r}").optimizer)
        for o in OPTIMIZERS
        for r in REGULARIZATIONS
    }
    schedulers = {s: build_scheduler_factory(_composed(f"scheduler={s}")) for s in SCHEDULERS}
    for regularization in REGULARIZATIONS:
        if (model, regularization) in REFUSED:  # checked in the pair test above
            continue
        cfg = _composed(
            f"model={model}", f"regularization={regularization}", *PRODUCT_OVERRIDES.get(model, [])
        )
        _, module = build(cfg)
        pristine = copy.deepcopy(module.net.state_dict())
        for optimizer, scheduler in itertools.product(OPTIMIZERS, SCHEDULERS):
            sched = schedulers[scheduler]
            module.net.load_state_dict(pristine)
            module.optimizer_factory = optimizers[(optimizer, regularization)]
            (
                module.scheduler_factory,
                module.hparams.scheduler_interval,
                module.hparams.scheduler_monitor,
            ) = sched
            try:
                _one_step(module)
            except Exception as err:  # name the failing combination
                raise AssertionError(
                    f"model={model} optimizer={optimizer} scheduler={scheduler} "
                    f"regularization={regularization}: {err!r}"
                ) from err


def test_assembled_combination_equals_hydra_composition() -> None:
    """The shortcut above must give exactly what Hydra composes for the same overrides."""
    for combo in [
        ("cnn", "sgd", "onecycle", "combined"),
        ("mlp", "adamw", "plateau", "l2"),
        ("resnet", "nesterov", "multistep", "dropout"),
    ]:
        model, optimizer, scheduler, regularization = combo
        hydra_cfg = compose_config(
            [
                f"model={model}",
                f"optimizer={optimizer}",
                f"scheduler={scheduler}",
                f"regularization={regularization}",
            ]
        )
        assembled = _combination(*combo)
        assert OmegaConf.to_container(assembled, resolve=True) == OmegaConf.to_container(
            hydra_cfg, resolve=True
        )


def test_regularization_presets_set_their_knobs() -> None:
    cfg = compose_config(["model=cnn", "regularization=combined"])
    assert cfg.optimizer.weight_decay == 5e-4
    assert cfg.model.dropout == 0.2 and cfg.model.batch_norm is True
    assert cfg.module.label_smoothing == 0.1
    assert cfg.callbacks.early_stopping.monitor == "val/acc"
    assert compose_config(["regularization=l1"]).module.l1 > 0
    assert compose_config(["optimizer=sgd", "regularization=l2"]).optimizer.weight_decay == 5e-4


def test_regularization_none_switches_the_defaults_off_and_presets_stand_alone() -> None:
    default = compose_config(["model=cnn"])
    assert default.module.label_smoothing == 0.1 and default.optimizer.weight_decay == 0.05
    assert default.model.dropout == 0.25
    for preset in ["none", "dropout", "l1", "l2", "batchnorm", "label_smoothing", "early_stopping"]:
        cfg = compose_config(["model=cnn", f"regularization={preset}"])
        knobs = {
            "label_smoothing": cfg.module.label_smoothing,
            "l1": cfg.module.l1,
            "dropout": cfg.model.dropout,
            "l2": cfg.optimizer.weight_decay,
        }
        on = {name for name, value in knobs.items() if value}
        assert on == ({preset} & set(knobs)), f"regularization={preset} leaves {on} on"


def test_schedulers_fill_in_the_run_length() -> None:
    from mnistlab.optim import build_scheduler

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    cosine, interval, _ = build_scheduler_factory(compose_config(["scheduler=cosine"]))
    assert interval == "step"
    sched = build_scheduler(cosine, opt, total_steps=10, total_epochs=2, interval="step")
    assert sched.T_max == 10
    lrs = []
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9) and lrs[4] == pytest.approx(0.5)


def test_warmup_cosine_shape() -> None:
    from mnistlab.optim import warmup_cosine

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = warmup_cosine(opt, total_steps=100, warmup_fraction=0.1)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(100):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.1)  # first of 10 warm-up steps
    assert lrs[9] == pytest.approx(1.0) and max(lrs) == pytest.approx(1.0)
    assert lrs[100] == pytest.approx(0.0, abs=1e-9)


def test_epoch_schedules_scale_with_max_epochs() -> None:
    cfg = compose_config(["scheduler=multistep", "trainer.max_epochs=20"])
    assert list(cfg.scheduler.milestones) == [10, 15]
    assert compose_config(["scheduler=step", "trainer.max_epochs=30"]).scheduler.step_size == 10


def _optimizer(*overrides: str) -> torch.optim.Optimizer:
    _, module = build(_composed(*overrides))
    config = _configure(module)
    return config["optimizer"] if isinstance(config, dict) else config


def test_fused_kernel_unless_the_config_chooses() -> None:
    """CPU runs step Adam/AdamW/SGD with torch's fused kernel; a written choice is kept."""
    assert all(g["fused"] is True for g in _optimizer().param_groups)  # default AdamW
    assert _optimizer("optimizer=sgd").param_groups[0]["fused"] is True
    assert not _optimizer("+optimizer.fused=false").param_groups[0]["fused"]
    explicit = _optimizer("+optimizer.foreach=true").param_groups[0]
    assert explicit["foreach"] is True and not explicit["fused"]
    assert _optimizer("optimizer=rmsprop").param_groups[0].get("fused") is None


def test_fused_choice_needs_float_parameters_on_cpu_or_cuda() -> None:
    from mnistlab.optim import prefer_fused

    adamw = functools.partial(torch.optim.AdamW, lr=1e-3)
    on_meta = [torch.nn.Parameter(torch.zeros(3, device="meta"))]
    assert prefer_fused(adamw, on_meta) is adamw
    assert prefer_fused(adamw, [torch.nn.Parameter(torch.zeros(3))]).keywords["fused"] is True
    rmsprop = functools.partial(torch.optim.RMSprop, lr=1e-3)
    assert prefer_fused(rmsprop, [torch.nn.Parameter(torch.zeros(3))]) is rmsprop


def test_fused_and_loop_kernels_train_the_same_weights() -> None:
    """The switch is a speed-up only: the same steps give the same weights."""
    weights = []
    for extra in ([], ["+optimizer.fused=false"]):
        torch.manual_seed(0)
        _, module = build(_composed("model=mlp", *extra))
        config = _configure(module)
        optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
        images, labels = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
        for _ in range(5):
            optimizer.zero_grad()
            module.criterion(module(images), labels).backward()
            optimizer.step()
            scheduler.step()
        weights.append(torch.cat([p.detach().flatten() for p in module.net.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=1e-6)
