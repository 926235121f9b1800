"""Lightning callback that reports each validation to the Optuna trial and stops pruned trials."""

from __future__ import annotations

from typing import Any

import lightning as L

from mnistlab.search.trial import TrialLink, TrialReporter


class TrialPruning(L.Callback):
    """After every validation epoch: report ``monitor`` (val/acc) and stop training if pruned.

    The trial's step is the epoch number as everywhere in the lab (1 = the first epoch),
    so ``pruned_after_epoch`` in ``metrics.json`` and the search report agree with
    ``history.csv``; a pruner's ``n_warmup_steps: 2`` first prunes after epoch 2.

    Stopping goes through ``trainer.should_stop``, so the epoch's history, checkpoint and
    metrics are written as in any run; the trial is told ``PRUNED`` at that moment.
    """

    def __init__(self, link: TrialLink) -> None:
        self.link = link
        self.reporter: TrialReporter | None = None

    @property
    def pruned(self) -> bool:
        return self.reporter is not None and self.reporter.pruned_at is not None

    @property
    def pruned_at(self) -> int | None:
        return self.reporter.pruned_at if self.reporter else None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.reporter = self.link.reporter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.reporter is None or trainer.sanity_checking or self.pruned:
            return
        value: Any = trainer.callback_metrics.get(self.link.monitor)
        epoch = trainer.current_epoch + 1  # the epoch just validated, 1 = the first
        if value is not None and self.reporter.report(float(value), epoch):
            trainer.should_stop = True


def trial_pruning() -> TrialPruning | None:
    """The callback when this run is a trial of a search (``hparams_search=...``), else None."""
    link = TrialLink.from_hydra()
    return TrialPruning(link) if link is not None else None
