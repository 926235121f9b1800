"""Shared pieces of the study answers: the Answer/Study records, the ``report`` block, job files."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mnistlab.report.collect import Job
from mnistlab.report.stats import (
    Analysis,
    Group,
    Stat,
    is_percent,
)

DIAGNOSTICS = Path("artifacts") / "diagnostics"
Table = tuple[list[str], list[list[str]]]


@dataclass
class Answer:
    """What one answer kind found: sentences (with numbers), tables and figures."""

    sentences: list[str] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)  # (title, (header, rows))
    figures: list[tuple[str, str, Figure]] = field(default_factory=list)  # (stem, caption, fig)
    notes: list[str] = field(default_factory=list)


@dataclass
class Study:
    """The study a sweep ran, and the answer the report wrote for it."""

    name: str
    question: str
    kinds: list[str]
    answer: Answer


def study_name(jobs: list[Job]) -> str:
    """``experiment=<name>`` from the jobs' overrides (the study's file name), else ``sweep``."""
    for job in jobs:
        name = job.overrides.get("experiment")
        if name:
            return name
    return "sweep"


def study_spec(jobs: list[Job]) -> tuple[str, list[dict[str, Any]]]:
    """``(question, answer specs)`` from the first job whose config has a ``report`` block."""
    for job in jobs:
        block = job.config.get("report")
        if isinstance(block, dict):
            answers = block.get("answer") or []
            answers = answers if isinstance(answers, list) else [answers]
            specs = [a if isinstance(a, dict) else {"kind": str(a)} for a in answers]
            return " ".join(str(block.get("question", "")).split()), specs
    return "", []


# --- shared helpers --------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _pm(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """``12.3 ± 0.4`` over seeds (no ± for one value, ``—`` for none)."""
    stat = Stat.of(values)
    if stat.n == 0:
        return "—"
    text = f"{stat.mean * scale:.{digits}f}"
    return text if math.isnan(stat.std) else f"{text} ± {stat.std * scale:.{digits}f}"


def _sig(values: list[float]) -> str:
    """Ratios span decades: geometric-free mean ± std in 3 significant digits."""
    stat = Stat.of(values)
    if stat.n == 0:
        return "—"
    return f"{stat.mean:.3g}" if math.isnan(stat.std) else f"{stat.mean:.3g} ± {stat.std:.2g}"


def _groups(analysis: Analysis) -> list[Group]:
    """Groups with finished jobs, best first (the analysis' rank order)."""
    return [g for g in analysis.groups if g.finished]


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _metric_text(values: list[float], metric: str) -> str:
    scale, digits = (100.0, 2) if is_percent(metric) else (1.0, 4)
    unit = "%" if is_percent(metric) else ""
    return _pm(values, scale, digits) + unit


def _metric_values(group: Group, metric: str) -> list[float]:
    return [v for v in (j.metric(metric) for j in group.finished) if not math.isnan(v)]


def _seeds(n: int) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{n} seed{'s' if n != 1 else ''}"


def _epoch_axis(ax: Any) -> None:
    """Whole-number epoch ticks (1 = the first) for the curves drawn on ``ax``; a single epoch
    gets one tick, not 0.96 ... 1.04."""
    from matplotlib.ticker import MaxNLocator

    xs = [float(x) for line in ax.get_lines() for x in line.get_xdata()]
    if max(xs, default=1.0) <= 1:
        ax.set_xlim(0.5, 1.5)
        ax.set_xticks([1])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _best_epoch(job: Job) -> int | None:
    value = job.metrics.get("best_epoch")
    return int(value) if isinstance(value, (int, float)) else None
