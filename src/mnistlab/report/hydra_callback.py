"""Hydra callback: the sweep report and the sweep's exit status when a multirun ends
(registered in conf/hydra/default.yaml)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("mnistlab.report")

#: exit status of the last multirun of this process: 1 when a job of it failed
_EXIT_STATUS = 0
#: jobs whose files are older than the sweep's start by more than this (seconds) are not its
#: own (clocks of the machines that wrote them may differ a little)
CLOCK_SLACK_S = 5.0


def sweep_exit_status() -> int:
    """What ``train.py`` / ``mnistlab-train`` exit with: 1 after a multirun with a failed job."""
    return _EXIT_STATUS


class SweepReportCallback(Callback):
    """After the last job of ``python train.py -m ...``: summary.csv, report.md, report.html in the
    sweep dir over all its jobs, a line on what this command ran, skipped and resumed, and
    ``N of M jobs failed: ...`` with exit status 1 when a job failed (diverged and pruned runs
    are results, not failures).

    A report that cannot be built is logged, not raised: the jobs' results are already on disk
    and ``python -m mnistlab.report <dir>`` can be re-run.
    """

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _EXIT_STATUS
        _EXIT_STATUS = 0
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistlab.report import build_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = build_report(sweep_dir)
        except Exception:
            log.exception(
                "the sweep report failed; re-run: python -m mnistlab.report %s", sweep_dir
            )
        else:
            log.info(
                "sweep report: %s (table: %s)",
                paths["html"].resolve(),
                paths["markdown"].resolve(),
            )
            print(f"\nSweep report: {paths['html'].resolve()}\n", flush=True)
        self._outcome(sweep_dir)

    def _outcome(self, sweep_dir: Path) -> None:
        """The closing lines; sets the exit status."""
        global _EXIT_STATUS
        from mnistlab.report.collect import find_job_dirs, read_job

        since = self.started - CLOCK_SLACK_S
        ours = [
            d for d in find_job_dirs(sweep_dir) if _mtime(d / ".hydra" / "overrides.yaml") >= since
        ]
        jobs = sorted((read_job(d, i) for i, d in enumerate(ours)), key=lambda j: j.num)
        if not jobs:
            return
        failed = [j for j in jobs if j.status in ("failed", "missing")]
        skipped = [
            j for j in jobs if j.status != "missing" and _mtime(j.path / "metrics.json") < since
        ]
        resumed = [j for j in jobs if j.metrics.get("resumed_from") and j not in skipped]
        log.info(
            "%d jobs: %d finished before (skipped), %d resumed from their last.ckpt, %d failed",
            len(jobs),
            len(skipped),
            len(resumed),
            len(failed),
        )
        if failed:
            _EXIT_STATUS = 1
            names = ", ".join(j.path.name for j in failed)
            print(f"{len(failed)} of {len(jobs)} jobs failed: {names}", file=sys.stderr, flush=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
