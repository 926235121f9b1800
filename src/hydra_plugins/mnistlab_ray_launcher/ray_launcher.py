"""The Hydra side of mnistlab's Ray launcher: its config schema and the Launcher plugin.

Why not ``hydra-ray-launcher``: its 1.2.2 (the last release) requires ``ray[default]<3``,
``cloudpickle<3`` and ``boto3`` for its AWS part; installed beside this project it downgrades
cloudpickle (3.x, used by joblib) and, through botocore, python-dateutil (4.x, used by
matplotlib). Its local launcher is ~60 lines over ``ray.init`` / ``ray.remote``; this one is
the same on Ray 2's API, with ``ray`` (core) as its only dependency, and a job that dies
(worker killed, out of memory) is reported as a failed job instead of ending the sweep.

Hydra imports every module under ``hydra_plugins`` at start-up, for every run; so ``ray``
is imported only when a sweep is launched. Hydra loads this module without registering it
in ``sys.modules``, so no ``from __future__ import annotations`` here: the dataclass needs
its annotations as real types.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class MnistlabRayLauncherConf:
    """``hydra.launcher`` of ``launcher=ray``; see conf/launcher/ray.yaml and the README."""

    _target_: str = "hydra_plugins.mnistlab_ray_launcher.ray_launcher.MnistlabRayLauncher"
    # null: start a Ray instance on this machine for the sweep; auto: join the Ray cluster this
    # machine is part of (`ray start`); host:6379 or ray://host:10001: that cluster
    address: str | None = None
    # resources of one job: Ray runs as many jobs at once as the cluster has room for
    num_cpus: int = 1
    num_gpus: float = 0
    # other ray.init arguments, e.g. {num_cpus: 8} to size a local Ray
    init: dict[str, Any] = field(default_factory=dict)
    # other ray.remote options of a job, e.g. {max_retries: 2, memory: 4000000000}
    remote: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/launcher",
    name="mnistlab_ray",
    node=MnistlabRayLauncherConf,
    provider="mnistlab",
)


def _run_job(
    hydra_context: HydraContext,
    sweep_config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """One job, in a Ray worker process."""
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


class MnistlabRayLauncher(Launcher):
    """Runs each job of a sweep as a Ray task with ``num_cpus`` / ``num_gpus``."""

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int = 1,
        num_gpus: float = 0,
        init: dict[str, Any] | None = None,
        remote: dict[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.init = _plain(init)
        self.remote = _plain(remote)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import ray

        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not ray.is_initialized():
            ray.init(address=self.address, **self._init_args())
        log.info(
            "Ray: %d jobs, %s CPU and %s GPU each, on %s; sweep output dir: %s",
            len(job_overrides),
            self.num_cpus,
            self.num_gpus,
            self.address or "a local Ray",
            sweep_dir,
        )
        task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, **self.remote)(_run_job)
        pending = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"ray_{idx}"
                sweep_config.hydra.job.num = idx
            ref = task.remote(
                self.hydra_context, sweep_config, self.task_function, Singleton.get_state()
            )
            pending.append((idx, list(overrides), ref))
        return [self._result(ray, *job) for job in pending]

    def _init_args(self) -> dict[str, Any]:
        """``init`` without unset values; sizing a Ray only when it is started here (joining a
        running cluster, Ray refuses them)."""
        args = {k: v for k, v in self.init.items() if v is not None}
        if self.address:
            for key in _LOCAL_ONLY:
                args.pop(key, None)
        return args

    @staticmethod
    def _result(ray: Any, idx: int, overrides: list[str], ref: Any) -> JobReturn:
        """The job's return, or a failed JobReturn when its worker died (the sweep goes on)."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as err:
            log.error("job %d (%s) did not finish: %s", idx, " ".join(overrides), err)
            failed = JobReturn(overrides=overrides, status=JobStatus.FAILED)
            failed._return_value = err
            return failed


#: ray.init options that only a Ray started by this process takes
_LOCAL_ONLY = ("num_cpus", "num_gpus", "resources", "object_store_memory", "include_dashboard")


def _plain(node: Any) -> dict[str, Any]:
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
