"""EMA of the weights whose checkpoints are tested with the averaged weights."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging as _LightningEMA
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeightAveraging(_LightningEMA):
    """Lightning's EMA callback, except when a checkpoint is loaded to test or predict.

    Lightning's callback saves the averaged weights as the checkpoint's ``state_dict`` and the
    raw ones beside them, and on loading puts the raw weights back into the model, also for
    ``trainer.test(ckpt_path=...)``: the best checkpoint would then be tested without its
    average. Outside fitting this subclass leaves the loaded (averaged) weights in place.
    """

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
