"""Hydra callback: build the sweep report when a multirun ends (registered in conf/hydra/default.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("mnistlab.report")


class SweepReportCallback(Callback):
    """After the last job of ``python train.py -m ...``: summary.csv, report.md, report.html in the sweep dir.

    A report that cannot be built is logged, not raised: the jobs' results are already on disk
    and ``python -m mnistlab.report <dir>`` can be re-run.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistlab.report import build_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = build_report(sweep_dir)
        except Exception:
            log.exception(
                "the sweep report failed; re-run: python -m mnistlab.report %s", sweep_dir
            )
            return
        log.info(
            "sweep report: %s (table: %s)", paths["html"].resolve(), paths["markdown"].resolve()
        )
        print(f"\nSweep report: {paths['html'].resolve()}\n", flush=True)
