"""The search loop behind ``hydra/sweeper=mnistlab_optuna``: ask, launch, tell, until the study has ``n_trials``.

Optuna's ask/tell API keeps Optuna in charge of the study (storage, sampler) and Hydra
in charge of running jobs (launcher, folders, config composition); this module is the
small piece between them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from mnistlab.errors import ConfigError
from mnistlab.search.space import SearchSpace, override_for, parse_search_space, suggest
from mnistlab.search.study import (
    ERROR_ATTR,
    OVERRIDES_ATTR,
    WORKER_ATTR,
    SearchSettings,
    check_identity,
    counted,
    fail_abandoned,
    make_sampler,
    open_study,
    trial_seed,
    worker_id,
    write_record,
)

log = logging.getLogger("mnistlab.search")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SearchRunner:
    """One process's share of a search; several may run on one study at once."""

    def __init__(self, plugin: Any, settings: Mapping[str, Any]) -> None:
        self.plugin = plugin  # the Hydra Sweeper: holds config and context for batch validation
        self.raw_settings = dict(settings)
        self.launcher: Any = None
        self.config: DictConfig | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.plugin.config = config
        self.plugin.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        """Run trials until the study holds ``n_trials``; a bad search config ends with one line."""
        try:
            return self._sweep(arguments)
        except ConfigError as err:
            log.error("%s", err)
            sys.exit(f"error: {err}")

    def _sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        settings = SearchSettings.from_config(self.raw_settings, sweep_dir, os.getcwd())
        space = parse_search_space(settings.params, arguments)
        if not space.distributions:
            raise ConfigError(
                "hydra.sweeper.params has nothing to search: give at least one key an "
                "interval(a, b), range(a, b) or choice(x, y) (see conf/hparams_search/)"
            )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        metric = OmegaConf.select(self.config, "optimized_metric", default=None)
        write_record(sweep_dir, settings, sys.argv[0], metric)
        study = open_study(settings)
        check_identity(study, {k: repr(d) for k, d in space.distributions.items()}, space.fixed)
        abandoned = fail_abandoned(study)
        if abandoned:
            log.info("trials %s were left running by a stopped process: marked failed", abandoned)
        done = counted(study)
        log.info(
            "study '%s' (%s): %d of %d trials done or running; storage %s",
            settings.study_name,
            "/".join(settings.directions),
            done,
            settings.n_trials,
            settings.storage,
        )
        returns: list[Sequence[JobReturn]] = []
        while (todo := settings.n_trials - counted(study)) > 0:
            batch = [self._ask(study, settings, space) for _ in range(min(settings.n_jobs, todo))]
            returns += self._run(study, settings, batch)
        self._log_best(study, settings)
        return returns

    def _ask(
        self, study: optuna.Study, settings: SearchSettings, space: SearchSpace
    ) -> tuple[optuna.trial.Trial, list[str]]:
        trial = study.ask()
        seed = settings.sampler.get("seed")
        if seed is not None:
            study.sampler = make_sampler(settings.sampler, trial_seed(seed, trial.number))
        overrides = list(space.fixed)
        for name, distribution in space.distributions.items():
            value = suggest(trial, name, distribution)
            overrides.append(override_for(name, value, distribution))
        trial.set_user_attr(WORKER_ATTR, worker_id())
        trial.set_user_attr(OVERRIDES_ATTR, overrides)
        return trial, overrides

    def _run(
        self,
        study: optuna.Study,
        settings: SearchSettings,
        batch: list[tuple[optuna.trial.Trial, list[str]]],
    ) -> list[Sequence[JobReturn]]:
        """Launch a batch (job number = trial number) and tell the study how each trial ended."""
        returns = []
        try:
            self.plugin.validate_batch_is_legal([overrides for _, overrides in batch])
            for run in _consecutive(batch):
                results = self.launcher.launch(
                    [overrides for _, overrides in run], initial_job_idx=run[0][0].number
                )
                for (trial, _), result in zip(run, results, strict=True):
                    self._tell(study, settings, trial, result)
                returns.append(results)
        except BaseException:
            for trial, _ in batch:  # interrupted or unlaunchable: these trials will not finish
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        return returns

    def _tell(
        self,
        study: optuna.Study,
        settings: SearchSettings,
        trial: optuna.trial.Trial,
        result: JobReturn,
    ) -> None:
        values, error = _values(result, settings)
        if values is None:
            _set_error(trial, error)
            frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        else:
            frozen = study.tell(trial, values, skip_if_finished=True)
        self._log_trial(study, settings, frozen, error)

    def _log_trial(
        self,
        study: optuna.Study,
        settings: SearchSettings,
        frozen: FrozenTrial,
        error: str | None,
    ) -> None:
        names = settings.objectives or ["value"] * len(settings.directions)
        if frozen.state == TrialState.COMPLETE:
            outcome = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, frozen.values, strict=True))
        elif frozen.state == TrialState.PRUNED:
            step = frozen.last_step
            outcome = f"pruned after epoch {step}" if step is not None else "pruned"
        else:
            outcome = f"failed ({error or 'see its folder'})"
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        log.info(
            "trial %d %s [%d/%d finished]", frozen.number, outcome, finished, settings.n_trials
        )

    def _log_best(self, study: optuna.Study, settings: SearchSettings) -> None:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        counts = {s.name.lower(): states.count(s) for s in TrialState if states.count(s)}
        log.info("study '%s': %s", settings.study_name, counts)
        if not counts.get("complete"):
            return
        if len(settings.directions) == 1:
            best = study.best_trial
            log.info("best trial %d: value %.6g, %s", best.number, best.value, best.params)
        else:
            log.info("Pareto front: trials %s", [t.number for t in study.best_trials])


def _consecutive(
    batch: list[tuple[optuna.trial.Trial, list[str]]],
) -> list[list[tuple[optuna.trial.Trial, list[str]]]]:
    """Split a batch where trial numbers jump (another process asked in between)."""
    runs: list[list[tuple[optuna.trial.Trial, list[str]]]] = []
    for item in batch:
        if runs and item[0].number == runs[-1][-1][0].number + 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _job_metrics(result: JobReturn) -> dict[str, Any]:
    """The job's ``metrics.json`` (train.py writes one per job), or {}."""
    try:
        out = result.hydra_cfg.hydra.runtime.output_dir  # type: ignore[union-attr]
        return json.loads((Path(out) / "metrics.json").read_text())
    except (AttributeError, OSError, ValueError, TypeError):
        return {}


def _values(result: JobReturn, settings: SearchSettings) -> tuple[list[float] | None, str | None]:
    """The objective values of a finished job, or None and why not (the trial then fails)."""
    if result.status != JobStatus.COMPLETED:
        err = result._return_value
        return None, f"{type(err).__name__}: {err}"
    value = result._return_value
    if settings.objectives:
        source = value if isinstance(value, Mapping) else _job_metrics(result)
        missing = [o for o in settings.objectives if o not in source]
        if missing:
            error = source.get("error") or f"no {', '.join(missing)} in its metrics"
            return None, str(error)
        raw: Sequence[Any] = [source[o] for o in settings.objectives]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        raw = list(value)
    else:
        raw = [value]
    if len(raw) != len(settings.directions):
        return None, (
            f"the task returned {len(raw)} value(s) for {len(settings.directions)} directions; "
            "set hydra.sweeper.objectives to one metric per direction"
        )
    try:
        values = [float(v) for v in raw]
    except (TypeError, ValueError):
        return None, f"the task returned {raw!r}, not numbers"
    if not all(math.isfinite(v) for v in values):
        return None, str(_job_metrics(result).get("error") or f"non-finite objective {values}")
    return values, None


def _set_error(trial: optuna.trial.Trial, error: str | None) -> None:
    """Keep why a trial failed next to it in the study (seen in the dashboard); not after it ended."""
    if not error:
        return
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # pruned by its job
        trial.set_user_attr(ERROR_ATTR, " ".join(error.split())[:500])
