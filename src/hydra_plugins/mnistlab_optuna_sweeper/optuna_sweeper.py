"""The Hydra side of mnistlab's search: the sweeper's config schema and the Sweeper plugin.

Hydra imports every module under ``hydra_plugins`` at start-up, for every run; so this
module imports nothing heavy, and the work happens in :mod:`mnistlab.search.sweeper`.
Hydra loads it without registering it in ``sys.modules``, so no ``from __future__ import
annotations`` here: the dataclass needs its annotations as real types.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class MnistlabOptunaSweeperConf:
    """``hydra.sweeper`` of a search; see conf/hparams_search/*.yaml and the README."""

    _target_: str = "hydra_plugins.mnistlab_optuna_sweeper.optuna_sweeper.MnistlabOptunaSweeper"
    # maximize or minimize, or a list of them for a multi-objective search
    direction: Any = "maximize"
    # metrics of the job's metrics.json, one per direction; null: the task's return value
    objectives: Any = None
    study_name: str | None = None
    # null: a journal file in the sweep folder; a file path (journal) or a database URL
    storage: str | None = None
    # total trials of the study: a re-run continues up to this many
    n_trials: int = 20
    # trials asked and launched together (parallel with launcher=joblib)
    n_jobs: int = 1
    # reported by every trial after each validation epoch; what the pruner compares
    monitor: str = "val/acc"
    # {name: tpe|random|cmaes|gp|qmc|nsgaii|nsgaiii, seed: ..., <options of that sampler>}
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": None})
    # {name: none|median|percentile|successive_halving|hyperband|threshold, <its options>}
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    # key: search-space expression, e.g. optimizer.lr: tag(log, interval(1e-4, 1e-2))
    params: dict[str, Any] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="mnistlab_optuna",
    node=MnistlabOptunaSweeperConf,
    provider="mnistlab",
)


class MnistlabOptunaSweeper(Sweeper):
    """Runs an Optuna study through Hydra's launcher: one job per trial, job number = trial number."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.impl: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from mnistlab.search.sweeper import SearchRunner

        self.impl = SearchRunner(self, self.settings)
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.impl.sweep(arguments)
