"""The job side of a search: which trial this job is, and reporting to it.

The sweeper launches trial ``n`` as job ``n`` (``hydra.job.num``), and every job carries
the sweeper's config in its Hydra config; so a job finds its study and trial without any
extra override, whichever launcher ran it (in-process, joblib, submitit) and on whichever
machine can reach the storage.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

SWEEPER_TARGET = "hydra_plugins.mnistlab_optuna_sweeper.optuna_sweeper.MnistlabOptunaSweeper"

log = logging.getLogger("mnistlab.search")


@dataclass
class TrialLink:
    """The study and trial number of a job, and what it reports after each validation."""

    storage: str
    study_name: str
    number: int
    monitor: str
    pruner: dict[str, Any]

    @classmethod
    def from_hydra(cls) -> TrialLink | None:
        """The trial this job runs, or None outside a search (single runs, grids, tests).

        Multi-objective studies get None too: Optuna keeps intermediate values (and prunes)
        for single-objective studies only.
        """
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hydra_cfg = HydraConfig.get()
        if (
            hydra_cfg.mode != RunMode.MULTIRUN
            or hydra_cfg.sweeper.get("_target_") != SWEEPER_TARGET
        ):
            return None
        from mnistlab.search.study import SearchSettings

        settings = SearchSettings.from_config(
            hydra_cfg.sweeper, hydra_cfg.sweep.dir, hydra_cfg.runtime.cwd
        )
        if len(settings.directions) > 1:
            return None
        return cls(
            storage=settings.storage,
            study_name=settings.study_name,
            number=int(hydra_cfg.job.num),
            monitor=settings.monitor,
            pruner=settings.pruner,
        )

    def reporter(self) -> TrialReporter | None:
        """A reporter bound to the trial, or None (with a warning) when the study does not hold it."""
        import optuna

        from mnistlab.search.study import make_pruner, make_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(
            study_name=self.study_name,
            storage=make_storage(self.storage),
            pruner=make_pruner(self.pruner),
        )
        trials = [t for t in study.get_trials(deepcopy=False) if t.number == self.number]
        if not trials or trials[0].state.is_finished():
            log.warning(
                "trial %d is not a running trial of study '%s'; nothing is reported",
                self.number,
                self.study_name,
            )
            return None
        # Optuna has no public "trial by number" for a trial asked by another process;
        # Trial(study, trial_id) is how its own integrations attach to one.
        trial = optuna.trial.Trial(study, trials[0]._trial_id)
        return TrialReporter(study, trial, self.monitor)


class TrialReporter:
    """Intermediate values of one trial; asks the study's pruner after each one."""

    def __init__(self, study: Any, trial: Any, monitor: str) -> None:
        self.study, self.trial, self.monitor = study, trial, monitor
        self.pruned_at: int | None = None

    @property
    def number(self) -> int:
        return int(self.trial.number)

    def report(self, value: float, step: int) -> bool:
        """Record ``value`` at ``step``; True when the pruner stops the trial (then it is told pruned)."""
        if value is None or math.isnan(float(value)):
            return False
        self.trial.report(float(value), step)
        if not self.trial.should_prune():
            return False
        from optuna.trial import TrialState

        self.pruned_at = step
        self.study.tell(self.trial, state=TrialState.PRUNED, skip_if_finished=True)
        log.info("trial %d pruned after step %d (%s=%.4f)", self.number, step, self.monitor, value)
        return True
