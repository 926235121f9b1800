"""The LightningModule every model family trains with: loss, metrics, optimizer, divergence stop."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection, SumMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from mnistlab.errors import ConfigError, in_range, one_of
from mnistlab.optim import build_scheduler, parameter_groups, prefer_fused
from mnistlab.resume import rng_state, set_rng_state
from mnistlab.scratch import lab as scratch

log = logging.getLogger(__name__)

LOSSES = ("ce", "mse")


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy (fraction correct) and macro precision / recall / F1, named ``<stage>/<metric>``."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "precision_macro": MulticlassPrecision(num_classes, average="macro"),
            "recall_macro": MulticlassRecall(num_classes, average="macro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
    )


def logged_metrics() -> list[str]:
    """Every epoch metric the module logs (what a plateau scheduler or a checkpoint can monitor)."""
    names = [*classification_metrics(2, "").keys(), "loss"]
    return [f"{stage}/{n}" for stage in ("train", "val") for n in names] + ["val/acc_best"]


class ClassifierModule(L.LightningModule):
    """Trains ``net`` with cross-entropy or MSE, optional L1 penalty and label smoothing.

    Args:
        net: a :class:`mnistlab.models.Classifier`.
        optimizer: partial optimizer (Hydra ``_partial_``), called with parameter groups.
        scheduler: partial LR scheduler or None; ``scheduler_interval`` is ``step`` or ``epoch``.
        loss: ``ce`` (cross-entropy on logits) or ``mse`` (squared error of softmax vs one-hot,
            summed over classes, averaged over the batch).
        label_smoothing: mass moved from the true class to all classes (both losses).
        l1: coefficient of the L1 penalty on weights (not biases / norm scales). The penalty
            is added to the objective that is minimized, but ``train/loss`` is the data loss
            alone (the same quantity as ``val/loss``, so the two compare); the penalty term is
            logged on its own as ``train/l1_penalty``.
        decay_norm_and_bias: apply the optimizer's weight decay to biases and norm scales too.
        channels_last: NHWC memory layout for conv nets (``auto``: when the net has convolutions).
        compile: wrap the net with ``torch.compile``.
        class_names: for callbacks' pictures and tables.
        divergence_check_every_n_steps: how often a non-finite training loss is looked for.
            ``1`` checks every step and skips the optimizer step of a non-finite loss; ``N > 1``
            reads a flag kept on the device every N steps (a GPU does not wait for the CPU each
            step) and stops then; ``0`` checks only the epoch's mean loss; ``auto`` is 1 on the
            CPU, where reading a value costs nothing, and 50 on a GPU.
        tta_flip: test-time augmentation for mirror-symmetric classes (Fashion-MNIST): validation,
            test and prediction average the logits of each image and its horizontal mirror.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "step",
        scheduler_monitor: str | None = None,
        loss: str = "ce",
        label_smoothing: float = 0.0,
        l1: float = 0.0,
        decay_norm_and_bias: bool = False,
        channels_last: bool | str = "auto",
        compile: bool = False,
        class_names: list[str] | None = None,
        divergence_check_every_n_steps: int | str = "auto",
        tta_flip: bool = False,
    ) -> None:
        super().__init__()
        one_of(loss, "module.loss", LOSSES)
        in_range(label_smoothing, "module.label_smoothing", 0.0, 1.0)
        in_range(l1, "module.l1", 0.0, math.inf)
        every = divergence_check_every_n_steps
        if every != "auto" and (isinstance(every, bool) or not isinstance(every, int) or every < 0):
            raise ConfigError(
                f"module.divergence_check_every_n_steps={every!r} must be a whole number >= 0 or auto"
            )
        self.save_hyperparameters(
            ignore=["net", "optimizer", "scheduler", "class_names"], logger=False
        )
        self.net = net
        self.num_classes: int = net.num_classes
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # a net with hand-written backprop (mnistlab.scratch) trains by manual optimization
        self.automatic_optimization = not scratch.computes_own_gradients(net)
        if not self.automatic_optimization:
            scratch.check_module_options(l1=l1, compile=compile)
            scratch.hand_written_optimizer(optimizer)  # refuse one not written by hand, now
        has_conv = any(isinstance(m, nn.Conv2d) for m in net.modules())
        self.channels_last = has_conv if channels_last == "auto" else bool(channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.forward_net: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(self.net) if compile else self.net
        )
        self.train_metrics = classification_metrics(self.num_classes, "train/")
        self.val_metrics = classification_metrics(self.num_classes, "val/")
        self.test_metrics = classification_metrics(self.num_classes, "test/")
        self.losses = nn.ModuleDict({f"{s}_loss": MeanMetric() for s in ("val", "test")})
        self.val_acc_best = MaxMetric()
        self._resumed_best: float | None = None  # val/acc_best of the epochs before a resume
        # test images seen, summed over ranks: under DDP each is tested exactly once
        self.test_count = SumMetric()
        # Training metrics are accumulated cheaply on the device (argmax and a loss sum per
        # step) and handed to torchmetrics once per epoch: the same values, without a
        # torchmetrics update (and its host syncs) on every step.
        self._train_preds: list[torch.Tensor] = []
        self._train_labels: list[torch.Tensor] = []
        self._train_loss_sum: torch.Tensor | None = None
        self._train_penalty_sum: torch.Tensor | None = None  # l1 * |w|_1, summed like the loss
        self._train_count = 0
        self._nonfinite: torch.Tensor | None = None  # device flag for checks every N > 1 steps
        self.diverged: dict[str, Any] | None = None
        #: the resolved run config, stored in checkpoints so eval can rebuild the model
        self.run_config: dict[str, Any] | None = None

    # --- forward and loss -----------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.forward_net(x)

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for evaluation: with ``tta_flip``, the mean over the image and its mirror."""
        if not self.hparams.tta_flip:
            return self(x)
        return (self(x) + self(x.flip(-1))) / 2

    def criterion(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        smoothing = self.hparams.label_smoothing
        if self.hparams.loss == "ce":
            return F.cross_entropy(logits, labels, label_smoothing=smoothing)
        target = F.one_hot(labels, self.num_classes).to(logits.dtype)
        if smoothing:
            target = target * (1 - smoothing) + smoothing / self.num_classes
        return F.mse_loss(logits.softmax(dim=1), target, reduction="sum") / len(labels)

    def l1_penalty(self) -> torch.Tensor:
        return sum(p.abs().sum() for p in self.net.parameters() if p.ndim >= 2)

    # --- steps ---------------------------------------------------------------------------
    def check_fits(self, spec: Any) -> None:
        """Refuse options that do not fit the data set (``spec``: a ``DatasetSpec``)."""
        if self.hparams.tta_flip and spec is not None and not spec.mirror_invariant:
            raise ConfigError(
                f"module.tta_flip=true does not fit data={spec.name}: a mirrored image changes its class; "
                f"set module.tta_flip=false or use a mirror-invariant data set (fashion_mnist)"
            )

    def setup(self, stage: str) -> None:
        # train.build() checks this before any data is loaded; this catches direct Trainer use
        self.check_fits(getattr(getattr(self.trainer, "datamodule", None), "spec", None))

    @property
    def divergence_check_interval(self) -> int:
        """Steps between non-finite-loss checks (0: only at epoch end)."""
        every = self.hparams.divergence_check_every_n_steps
        if every == "auto":
            return 1 if self.device.type == "cpu" else 50
        return int(every)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor | None:
        images, labels = batch
        penalty = None
        if self.automatic_optimization:
            logits = self(images)
            data_loss = loss = self.criterion(logits, labels)
            if self.hparams.l1:
                penalty = self.hparams.l1 * self.l1_penalty()
                loss = data_loss + penalty  # what is minimized; train/loss logs data_loss
        else:  # forward, loss and backward by hand (mnistlab.scratch); fills each param.grad
            loss, logits = self.net.loss_and_gradients(
                images, labels, self.hparams.loss, self.hparams.label_smoothing
            )
            scratch.after_hand_backward(self)
            data_loss = loss
        every = self.divergence_check_interval
        if every == 1 and not torch.isfinite(loss).item():
            self._stop_diverged(loss)
            return None  # skip this optimizer step
        self._accumulate_train(data_loss.detach(), logits.detach(), labels, penalty)
        if every > 1:
            nonfinite = ~torch.isfinite(loss.detach())
            self._nonfinite = nonfinite if self._nonfinite is None else self._nonfinite | nonfinite
            if (batch_idx + 1) % every == 0 and self._nonfinite.item():
                self._stop_diverged(
                    self._train_loss_sum / self._train_count
                )  # the non-finite running mean
        if not self.automatic_optimization:
            self.optimizers().step()
            scratch.step_schedulers(self, "step")
        return loss

    def _accumulate_train(
        self,
        loss: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        penalty: torch.Tensor | None = None,
    ) -> None:
        # Same arithmetic as MeanMetric.update(loss, n): a float32 sum of loss * n, then / sum(n).
        weighted = loss * len(labels)
        self._train_loss_sum = (
            weighted if self._train_loss_sum is None else self._train_loss_sum + weighted
        )
        if penalty is not None:
            weighted = penalty.detach() * len(labels)
            total = self._train_penalty_sum
            self._train_penalty_sum = weighted if total is None else total + weighted
        self._train_count += len(labels)
        self._train_preds.append(logits.argmax(dim=1))
        self._train_labels.append(labels)

    def _train_epoch_values(self) -> dict[str, torch.Tensor]:
        """train/* metrics of the epoch from the accumulated predictions (then cleared)."""
        values: dict[str, torch.Tensor] = {}
        if self._train_count:
            # argmax predictions give the same counts as logits (torchmetrics takes their argmax)
            self.train_metrics.update(torch.cat(self._train_preds), torch.cat(self._train_labels))
            values = {
                **self.train_metrics.compute(),
                "train/loss": self._train_loss_sum / self._train_count,
            }
            if self._train_penalty_sum is not None:
                values["train/l1_penalty"] = self._train_penalty_sum / self._train_count
        self.train_metrics.reset()
        self._train_preds, self._train_labels = [], []
        self._train_loss_sum, self._train_count, self._nonfinite = None, 0, None
        self._train_penalty_sum = None
        return values

    def _stop_diverged(self, loss: torch.Tensor) -> None:
        self.trainer.should_stop = True
        if (
            self.diverged is not None
        ):  # Lightning may run a few more steps (min_epochs): report once
            return
        loss = loss.detach()
        lr = (
            self.trainer.optimizers[0].param_groups[0]["lr"]
            if self.trainer.optimizers
            else float("nan")
        )
        self.diverged = {
            "epoch": self.current_epoch + 1,  # the lab's numbering: 1 = the first epoch
            "step": self.global_step,
            "loss": float(loss),
            "lr": lr,
        }
        log.error(
            "training diverged: train/loss=%s at epoch %d, step %d (lr=%.3g); stopping this run. "
            "Lower optimizer.lr, add a warm-up (scheduler=warmup_cosine) or clip gradients "
            "(trainer.gradient_clip_val=1.0).",
            float(loss),
            self.current_epoch + 1,
            self.global_step,
            lr,
        )

    def _eval_step(
        self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        images, labels = batch
        logits = self.eval_logits(images)
        loss = self.criterion(logits, labels)
        self.losses[f"{stage}_loss"].update(loss, len(labels))
        getattr(self, f"{stage}_metrics").update(logits, labels)
        if stage == "test":
            self.test_count.update(len(labels))
        return {"logits": logits, "labels": labels}

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        return self._eval_step("val", batch)

    def test_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        return self._eval_step("test", batch)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.eval_logits(images).softmax(dim=1)

    # --- epoch ends: compute once, log once ------------------------------------------------
    def _log_epoch(self, stage: str) -> dict[str, torch.Tensor]:
        metrics = getattr(self, f"{stage}_metrics")
        loss_metric = self.losses[f"{stage}_loss"]  # updated on the same batches as the metrics
        values: dict[str, torch.Tensor] = {}
        if loss_metric.update_count:
            values = {**metrics.compute(), f"{stage}/loss": loss_metric.compute()}
        metrics.reset()
        loss_metric.reset()
        if values:
            self.log_dict(values, sync_dist=True)
        return values

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # drop values seen during the sanity check
        if self._resumed_best is not None:  # a resumed run remembers its earlier epochs' best
            self.val_acc_best.update(torch.tensor(self._resumed_best, device=self.device))

    def on_train_epoch_end(self) -> None:
        values = self._train_epoch_values()
        if values:
            self.log_dict(values, sync_dist=True)
        loss = values.get("train/loss")
        if loss is not None and "train/l1_penalty" in values:
            loss = loss + values["train/l1_penalty"]  # the objective that was minimized
        if self.diverged is None and loss is not None and not torch.isfinite(loss):
            self._stop_diverged(loss)
        if not self.automatic_optimization:
            scratch.step_schedulers(self, "epoch")

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        if "val/acc" in values and not self.trainer.sanity_checking:
            self.val_acc_best(values["val/acc"])
            self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        if self._log_epoch("test"):
            self.log("test/n_samples", self.test_count.compute().float(), sync_dist=True)
        self.test_count.reset()

    # --- optimization --------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.net, self.hparams.decay_norm_and_bias)
        factory = self.optimizer_factory
        if not self.automatic_optimization:  # the hand-written counterpart (mnistlab.scratch)
            factory = scratch.hand_written_optimizer(factory)
        else:
            factory = prefer_fused(factory, [p for g in groups for p in g["params"]])
        optimizer = factory(params=groups)
        if self.scheduler_factory is None:
            return optimizer
        interval = self.hparams.scheduler_interval
        scheduler = build_scheduler(
            self.scheduler_factory,
            optimizer,
            total_steps=int(self.trainer.estimated_stepping_batches),
            total_epochs=int(self.trainer.max_epochs or 1),
            interval=interval,
        )
        config: dict[str, Any] = {"scheduler": scheduler, "interval": interval}
        if self.hparams.scheduler_monitor and self.automatic_optimization:  # else: scratch steps it
            config["monitor"] = self.hparams.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    # --- checkpoints carry the config ------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mnistlab_config"] = self.run_config
        checkpoint["mnistlab_class_names"] = self.class_names
        # what a resumed run needs beyond Lightning's own state (weights, optimizer, loops)
        checkpoint["mnistlab_rng"] = rng_state()
        if self.val_acc_best.update_called:
            checkpoint["mnistlab_val_acc_best"] = float(self.val_acc_best.compute())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "mnistlab_rng" in checkpoint:
            set_rng_state(checkpoint["mnistlab_rng"])
        self._resumed_best = checkpoint.get("mnistlab_val_acc_best")
