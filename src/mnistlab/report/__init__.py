"""The sweep report: ``python -m mnistlab.report <multirun dir>``, also run at the end of every multirun.

Writes ``summary.csv`` (one row per job), ``report.md`` and a self-contained
``report.html`` (images embedded) that group jobs by their non-seed overrides and
compare them with mean ± std over seeds.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mnistlab.report.collect import Job, collect
from mnistlab.report.render import render
from mnistlab.report.stats import Analysis, analyze

DEFAULT_METRIC = "val/acc_best"


def _configured_metric(jobs: list[Job]) -> str:
    """The ``optimized_metric`` the jobs were run with (what a sweeper optimizes)."""
    for job in jobs:
        config = job.path / ".hydra" / "config.yaml"
        if config.is_file():
            metric = (yaml.safe_load(config.read_text()) or {}).get("optimized_metric")
            if metric:
                return str(metric)
    return DEFAULT_METRIC


def build_report(
    sweep_dir: str | Path, out_dir: str | Path | None = None, metric: str | None = None
) -> dict[str, Path]:
    """Collect, analyze and render the report of a multirun directory; returns the written files."""
    sweep_dir = Path(sweep_dir)
    jobs = collect(sweep_dir)
    analysis = analyze(jobs, metric or _configured_metric(jobs))
    return render(analysis, sweep_dir, Path(out_dir) if out_dir else sweep_dir)


__all__ = ["Analysis", "Job", "analyze", "build_report", "collect"]
