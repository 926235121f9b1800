"""The study behind a search: settings, storage, sampler, pruner, and the trial budget.

Shared by the sweeper (which asks and tells trials) and by each job (which reports
intermediate values and may prune itself), so both build the same storage, study name
and pruner from the same ``hydra.sweeper`` config.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from mnistlab.errors import ConfigError

#: the file a search keeps its study in, inside the sweep folder, when no storage is set
DEFAULT_JOURNAL = "optuna.journal"
#: what the sweeper writes next to the jobs so that the report can find the study
RECORD = "search.yaml"
#: trial states that use up the budget: finished ones, and those some process is running
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
WORKER_ATTR = "mnistlab.worker"
OVERRIDES_ATTR = "mnistlab.overrides"
ERROR_ATTR = "mnistlab.error"
SPACE_ATTR = "mnistlab.search_space"
IDENTITY_ATTR = "mnistlab.fixed_overrides"
#: command-line keys that do not change a trial's result: a search may be resumed with others
IDENTITY_IGNORED = (
    "launcher",
    "logger",
    "data.root",
    "trainer.enable_progress_bar",
    "cpu_threads",
)

SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
    "nsgaii": "NSGAIISampler",
    "nsgaiii": "NSGAIIISampler",
}
PRUNERS = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
}
DIRECTIONS = ("maximize", "minimize")


@dataclass
class SearchSettings:
    """``hydra.sweeper`` of a search, checked and with the storage resolved to an absolute place."""

    storage: str
    study_name: str
    directions: list[str]
    n_trials: int
    n_jobs: int = 1
    objectives: list[str] | None = None
    monitor: str = "val/acc"
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any], sweep_dir: str | Path, cwd: str | Path
    ) -> SearchSettings:
        """Settings from the sweeper's config node (``hydra.sweeper``), relative paths against ``cwd``."""
        get = cfg.get
        directions = _directions(get("direction", "maximize"))
        objectives = get("objectives")
        if isinstance(objectives, str):
            objectives = [objectives]
        objectives = [str(o) for o in objectives] if objectives else None
        if objectives is not None and len(objectives) != len(directions):
            raise ConfigError(
                f"hydra.sweeper.objectives={objectives} names {len(objectives)} metrics for "
                f"{len(directions)} directions {directions}: give one metric per direction"
            )
        n_trials, n_jobs = get("n_trials", 20), get("n_jobs", 1)
        for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"hydra.sweeper.{key}={value} must be a whole number >= 1")
        study_name = get("study_name") or "search"
        settings = cls(
            storage=resolve_storage(get("storage"), sweep_dir, cwd),
            study_name=str(study_name),
            directions=directions,
            n_trials=n_trials,
            n_jobs=n_jobs,
            objectives=objectives,
            monitor=str(get("monitor") or "val/acc"),
            sampler=_plain(get("sampler")) or {"name": "tpe"},
            pruner=_plain(get("pruner")) or {"name": "none"},
            params=_plain(get("params")) or {},
        )
        settings.check()
        return settings

    @property
    def pruning(self) -> bool:
        return str(self.pruner.get("name", "none")) != "none"

    def check(self) -> None:
        """Fail on a sampler, pruner or monitor that cannot work, before any trial starts."""
        make_sampler(self.sampler)
        make_pruner(self.pruner)
        if self.pruning and len(self.directions) > 1:
            raise ConfigError(
                f"hydra.sweeper.pruner.name={self.pruner['name']}: Optuna prunes single-objective "
                "studies only; set hydra.sweeper.pruner.name=none for several directions"
            )
        if self.pruning:
            from mnistlab.report.stats import higher_is_better

            if higher_is_better(self.monitor) != (self.directions[0] == "maximize"):
                raise ConfigError(
                    f"hydra.sweeper.monitor={self.monitor} moves against direction={self.directions[0]}: "
                    "the pruner compares it per epoch in the study's direction; pick a monitor "
                    "that improves with the objective (val/acc to maximize, val/loss to minimize)"
                )

    def record(self) -> dict[str, Any]:
        """What ``search.yaml`` keeps for the report (and for a person looking for the study)."""
        return {
            "storage": self.storage,
            "study_name": self.study_name,
            "directions": self.directions,
            "objectives": self.objectives,
            "n_trials": self.n_trials,
            "monitor": self.monitor,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "dashboard": f"optuna-dashboard {self.storage}",
        }


def _plain(node: Any) -> Any:
    """An OmegaConf node (or anything) as plain Python containers."""
    if node is None:
        return None
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(node):
            return OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    return dict(node) if isinstance(node, Mapping) else node


def _directions(value: Any) -> list[str]:
    raw = [value] if isinstance(value, str) or not isinstance(value, Sequence) else list(value)
    directions = [str(d).lower() for d in raw]
    bad = [d for d in directions if d not in DIRECTIONS]
    if not directions or bad:
        raise ConfigError(
            f"hydra.sweeper.direction={value} must be maximize or minimize, or a list of them "
            "for several objectives (e.g. hydra.sweeper.direction=[maximize,minimize])"
        )
    return directions


def resolve_storage(storage: str | None, sweep_dir: str | Path, cwd: str | Path) -> str:
    """Where the study lives, absolute, so that jobs in other folders or processes find it.

    ``null``: ``<sweep dir>/optuna.journal``; a URL (``sqlite:///opt.db``,
    ``postgresql://...``): an Optuna RDB storage, relative SQLite paths made absolute;
    anything else: a journal file path.
    """
    base = Path(cwd)
    if not storage:
        return str((base / sweep_dir / DEFAULT_JOURNAL).resolve())
    storage = str(storage)
    if storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///") :]
        if not path.startswith("/") and path != ":memory:":
            return "sqlite:///" + str((base / path).resolve())
        return storage
    if "://" in storage:
        return storage
    return str((base / storage).resolve())


def make_storage(storage: str) -> optuna.storages.BaseStorage | str:
    """An Optuna storage: RDB URLs as they are, file paths as a journal file (created if missing)."""
    if "://" in storage:
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(storage))


def _build(kind: str, table: dict[str, str], module: Any, cfg: Mapping[str, Any], **extra: Any):
    cfg = dict(cfg or {})
    name = str(cfg.pop("name", "tpe" if kind == "sampler" else "none")).lower()
    if name not in table:
        raise ConfigError(
            f"hydra.sweeper.{kind}.name={name} is not a {kind}: use one of {', '.join(table)}"
        )
    cls = getattr(module, table[name])
    accepted = inspect.signature(cls).parameters
    unknown = [k for k in cfg if k not in accepted]
    if unknown:
        raise ConfigError(
            f"hydra.sweeper.{kind}.{unknown[0]}: {table[name]} takes no such option; "
            f"it takes {', '.join(accepted) or 'no options'}"
        )
    cfg.update({k: v for k, v in extra.items() if k in accepted})
    try:
        return cls(**cfg)
    except ImportError as err:
        raise ConfigError(
            f"hydra.sweeper.{kind}.name={name} needs a package that is not installed ({err})"
        ) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"hydra.sweeper.{kind} ({name}): {err}") from None


def make_sampler(cfg: Mapping[str, Any], seed: int | None = None) -> optuna.samplers.BaseSampler:
    """A sampler from ``{name: tpe, seed: 1234, <its options>}``; ``seed`` replaces the configured one."""
    cfg = dict(cfg or {})
    if seed is not None:
        cfg["seed"] = seed
    return _build("sampler", SAMPLERS, optuna.samplers, cfg)


def make_pruner(cfg: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """A pruner from ``{name: median, <its options>}``.

    ``none`` never prunes and ignores the other keys, so that a preset's pruner is switched
    off with ``hydra.sweeper.pruner.name=none`` alone.
    """
    if str((cfg or {}).get("name", "none")).lower() == "none":
        return optuna.pruners.NopPruner()
    return _build("pruner", PRUNERS, optuna.pruners, cfg)


def trial_seed(base: int | None, number: int) -> int | None:
    """The sampler seed for trial ``number``: reproducible, and different for every trial.

    One seeded sampler per process would propose the same random start-up points again in a
    resumed search and in every parallel process; seeding by trial number does neither.
    """
    return None if base is None else (int(base) * 1_000_003 + number) % 2**32


def open_study(settings: SearchSettings, create: bool = True) -> optuna.Study:
    """The study of a search, created on first use and loaded on every later one."""
    storage = make_storage(settings.storage)
    sampler = make_sampler(settings.sampler)
    pruner = make_pruner(settings.pruner)
    if create:
        return optuna.create_study(
            storage=storage,
            study_name=settings.study_name,
            directions=settings.directions,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    return optuna.load_study(
        study_name=settings.study_name, storage=storage, sampler=sampler, pruner=pruner
    )


def counted(study: optuna.Study) -> int:
    """Trials that use up the budget: finished (complete, pruned, failed) and running."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_abandoned(study: optuna.Study) -> list[int]:
    """Mark failed the running trials whose sweeper process on this machine is gone (killed, crashed).

    Without this an interrupted trial would stay ``RUNNING`` for ever and keep its place
    in the budget; trials of live processes, or of other machines, are left alone.
    """
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        failed.append(trial.number)
    return failed


def check_identity(study: optuna.Study, space: dict[str, str], fixed: list[str]) -> None:
    """Refuse to continue a study with a different search space or different fixed overrides.

    Trials of two different searches in one study would make its best trial and its
    importances meaningless; the first run stores what it searched, later runs compare.
    """
    identity = sorted(o for o in fixed if o.lstrip("+~").split("=")[0] not in IDENTITY_IGNORED)
    attrs = study.user_attrs
    if SPACE_ATTR not in attrs:
        study.set_user_attr(SPACE_ATTR, space)
        study.set_user_attr(IDENTITY_ATTR, identity)
        return
    old_space, old_identity = attrs[SPACE_ATTR], attrs.get(IDENTITY_ATTR, [])
    if old_space != space or old_identity != identity:
        changed = sorted(
            {k for k in {*old_space, *space} if old_space.get(k) != space.get(k)}
            | set(old_identity).symmetric_difference(identity)
        )
        raise ConfigError(
            f"study '{study.study_name}' was started with a different search ({', '.join(changed)}); "
            "continue it with the same overrides, or start a new one with another "
            "hydra.sweeper.study_name or hydra.sweep.dir"
        )


def write_record(
    sweep_dir: Path, settings: SearchSettings, program: str, metric: str | None = None
) -> Path:
    """``search.yaml``: where the study is, and how its trials were launched (for re-run commands)."""
    path = sweep_dir / RECORD
    record = {**settings.record(), "metric": metric, "program": program}
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    return path


def read_record(sweep_dir: Path) -> dict[str, Any] | None:
    """``search.yaml`` of a sweep folder, or None when the sweep was not a search."""
    path = Path(sweep_dir) / RECORD
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text()) or None
