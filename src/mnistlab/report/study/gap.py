"""Answer kind ``gap``: train minus validation accuracy per group, at the best epoch and the end."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mnistlab.artifacts.figures import grid_figure
from mnistlab.report.collect import Job
from mnistlab.report.stats import (
    Analysis,
    Stat,
    short_label,
)
from mnistlab.report.study.common import (
    Answer,
    _best_epoch,
    _colors,
    _epoch_axis,
    _groups,
    _metric_text,
    _metric_values,
    _pm,
)

# --- gap: train vs validation ----------------------------------------------------------------


def _series(job: Job, key: str) -> np.ndarray:
    return np.asarray([r.get(key, math.nan) for r in job.history], dtype=float)


def _above(points: float) -> str:
    """``4.00 points above`` / ``2.10 points below`` (train minus validation)."""
    return f"{abs(points):.2f} points {'above' if points >= 0 else 'below'}"


def answer_gap(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """Train-minus-validation accuracy per epoch per group, and its value at the best epoch."""
    answer = Answer()
    header = ["group", "train acc @ best %", "val acc @ best %", "gap @ best (points)",
              "gap @ end (points)", analysis.metric]  # fmt: skip
    rows, curves = [], []
    for group in _groups(analysis):
        at_best, at_end, train_best, val_best, gaps = [], [], [], [], []
        for job in group.finished:
            train, val = _series(job, "train/acc"), _series(job, "val/acc")
            if not len(train) or not len(val):
                continue
            n = min(len(train), len(val))
            gap = train[:n] - val[:n]
            gaps.append(gap)
            best = _best_epoch(job)  # 1 = the first epoch = history row 0
            best = best - 1 if best is not None and 1 <= best <= n else int(np.nanargmax(val[:n]))
            at_best.append(float(gap[best]))
            at_end.append(float(gap[-1]))
            train_best.append(float(train[best]))
            val_best.append(float(val[best]))
        if not gaps:
            continue
        curves.append((group, gaps))
        rows.append(
            [
                group.label,
                _pm(train_best, 100, 2),
                _pm(val_best, 100, 2),
                _pm(at_best, 100, 2),
                _pm(at_end, 100, 2),
                _metric_text(_metric_values(group, analysis.metric), analysis.metric),
            ]
        )
        best, end = (_above(Stat.of(v).mean * 100) for v in (at_best, at_end))
        answer.sentences.append(
            f"{short_label(group)}: train accuracy is {best} validation at the best epoch "
            f"and {end} it at the end."
        )
    if not curves:
        answer.notes.append("gap: no history.csv with train/acc and val/acc in the job folders.")
        return answer
    fig, (ax,) = grid_figure(1, size=(9.0, 4.4))
    for (group, gaps), color in zip(curves, _colors(len(curves)), strict=True):
        n = min(len(g) for g in gaps)
        stack = np.stack([g[:n] for g in gaps]) * 100
        x = np.arange(1, n + 1)
        ax.plot(x, stack.mean(axis=0), marker="o", ms=3, color=color, label=short_label(group))
        ax.fill_between(x, stack.min(axis=0), stack.max(axis=0), color=color, alpha=0.15)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("epoch (1 = first)")
    _epoch_axis(ax)
    ax.set_ylabel("train/acc - val/acc (points)")
    ax.set_title("Generalization gap per group (mean over seeds; band = seed min-max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    answer.tables.append(("Train vs validation accuracy (mean ± std over seeds)", (header, rows)))
    answer.figures.append(
        (
            "study_gap",
            "Train minus validation accuracy per epoch, one shared axis (train/loss is the data "
            "loss without the L1 term, as val/loss; its gap is in the generic figures below). "
            "train/acc is the running average over each epoch, with dropout and augmentation on.",
            fig,
        )
    )
    return answer
