"""Where a job runs: its process's role in a multi-process job, its GPU on a multi-GPU box."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: set by mnistlab's DDP launcher in the processes of ranks > 0: the job's decisions (resume
#: or not, which checkpoint) come from rank 0 on their command line, not from the folder
DECIDED_ENV = "MNISTLAB_RANK_FOLLOWS"


def is_follower() -> bool:
    """True in the processes of ranks > 0 of a multi-process job (DDP children, srun tasks):
    they train their share of the data but write no results."""
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        value = os.environ.get(var, "0")
        if value.isdigit() and int(value) > 0:
            return True
    procid, tasks = os.environ.get("SLURM_PROCID", "0"), os.environ.get("SLURM_NTASKS", "1")
    return procid.isdigit() and tasks.isdigit() and int(tasks) > 1 and int(procid) > 0


def decided_by_rank_zero() -> bool:
    """True in a DDP child started by mnistlab's launcher (see :data:`DECIDED_ENV`)."""
    return os.environ.get(DECIDED_ENV) == "1"


def job_number() -> int | None:
    """``hydra.job.num`` of a sweep job; None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return int(HydraConfig.get().job.num)


def job_devices(
    cfg: DictConfig, job_num: int | None = None, gpu_count: int | None = None
) -> dict[str, Any]:
    """Trainer overrides putting job ``i`` of a sweep on GPU ``i mod K`` (``spread_gpus``).

    For parallel sweeps on one box (``launcher=joblib``): each job is a one-device run,
    and without this every job would take GPU 0. A job process of joblib may run several
    jobs one after another, so the GPU is chosen by ``trainer.devices=[i]`` (CUDA is
    already set up in a reused process, ``CUDA_VISIBLE_DEVICES`` could not change it).
    Returns ``{}`` when spreading is off, outside a sweep, on a CPU, with one GPU, or for a
    job that asks for several devices itself.
    """
    if not cfg.get("spread_gpus"):
        return {}
    job_num = job_number() if job_num is None else job_num
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    devices = OmegaConf.select(cfg, "trainer.devices", default=1)
    if job_num is None or accelerator not in ("auto", "gpu", "cuda") or str(devices) != "1":
        return {}
    if gpu_count is None:
        import torch

        gpu_count = torch.cuda.device_count()
    if gpu_count < 2:
        return {}
    return {"accelerator": "gpu", "devices": [job_num % gpu_count]}
