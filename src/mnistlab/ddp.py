"""One job over several devices: Lightning's DDP with ranks > 0 started as this Hydra job.

Lightning starts the processes of ranks 1..N-1 by running the script again. Under Hydra it
re-uses the whole command line (``sys.argv``) and ``hydra.run.dir``: inside a multirun the
children would start a sweep of their own, and write to the single-run folder. Here a child
gets exactly its job's overrides and folder, and what rank 0 decided (the checkpoint it
resumes), so every rank trains the same job and only rank 0 writes its results
(``metrics.json``, artifacts, checkpoints and loggers).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.strategies.launchers import subprocess_script as _lightning_launcher

from mnistlab.jobs import DECIDED_ENV

#: what Lightning's launcher sets in this process's environment for its children
_DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value (a folder name may hold ``=`` and ``,``)."""
    return "'" + value.replace("'", "\\'") + "'"


def job_command(local_rank: int, extra: Sequence[str] = ()) -> tuple[list[str], str]:
    """The command (and folder) that starts rank ``local_rank`` of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hydra_cfg = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += [str(o) for o in hydra_cfg.overrides.task]
    command += [
        f"hydra.run.dir={quoted(str(hydra_cfg.runtime.output_dir))}",
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",  # rank 0 keeps the job's .hydra record
        *extra,
    ]
    return command, get_original_cwd()


class _HydraJobLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher of ranks 1..N-1, with :func:`job_command` as their command line."""

    def __init__(self, *args: Any, strategy: HydraDDPStrategy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strategy = strategy  # its child_overrides are read when the children start

    def _call_children_scripts(self) -> None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():  # not a Hydra job: Lightning's own command line
            super()._call_children_scripts()
            return
        original = _lightning_launcher._hydra_subprocess_cmd
        _lightning_launcher._hydra_subprocess_cmd = lambda local_rank: job_command(
            local_rank, self.strategy.child_overrides
        )
        self.strategy.saved_env = {k: os.environ.get(k) for k in _DIST_ENV}
        os.environ[DECIDED_ENV] = "1"  # the children's environment is a copy of this one
        try:
            super()._call_children_scripts()
        finally:
            _lightning_launcher._hydra_subprocess_cmd = original
            os.environ.pop(DECIDED_ENV, None)


class HydraDDPStrategy(DDPStrategy):
    """``DDPStrategy`` whose extra processes run this Hydra job (see the module docstring).

    ``child_overrides`` (set by :func:`mnistlab.run.train` before fitting) are added to their
    command lines: ``ckpt_path=...`` when rank 0 resumes a checkpoint.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.child_overrides: list[str] = []
        self.saved_env: dict[str, str | None] | None = None

    def finish_job(self) -> None:
        """After the job's fit and test: close its process group and put the environment back,
        so the next job of a sweep in this process starts a group of its own."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in (self.saved_env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.saved_env = None

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = _HydraJobLauncher(
                self.cluster_environment,
                self.num_processes,
                self.num_nodes,
                strategy=self,
            )
