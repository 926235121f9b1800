"""Answer kind ``lr_curves``: each schedule's learning rate beside its validation curve."""

from __future__ import annotations

from typing import Any

import numpy as np

from mnistlab.artifacts.figures import grid_figure
from mnistlab.report.stats import (
    Analysis,
    Group,
    short_label,
)
from mnistlab.report.study.common import (
    Answer,
    _colors,
    _epoch_axis,
    _groups,
    _metric_text,
    _metric_values,
)
from mnistlab.report.study.gap import _series

# --- lr_curves: schedules -------------------------------------------------------------------


def _mean_curve(group: Group, key: str) -> np.ndarray | None:
    series = [_series(j, key) for j in group.finished if j.history]
    series = [s for s in series if len(s) and not np.isnan(s).all()]
    if not series:
        return None
    n = min(len(s) for s in series)
    return np.nanmean(np.stack([s[:n] for s in series]), axis=0)


def answer_lr_curves(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """Each group's learning rate per epoch beside its validation accuracy, shared epoch axis."""
    answer = Answer()
    groups = [g for g in _groups(analysis) if _mean_curve(g, "val/acc") is not None]
    if not groups:
        answer.notes.append("lr_curves: no history.csv with lr and val/acc in the job folders.")
        return answer
    fig, (ax_lr, ax_val) = grid_figure(2, cols=2, size=(6.0, 4.2))
    for group, color in zip(groups, _colors(len(groups)), strict=True):
        lr, val = _mean_curve(group, "lr"), _mean_curve(group, "val/acc")
        if lr is not None:
            ax_lr.plot(np.arange(1, len(lr) + 1), lr, marker="o", ms=3, color=color,
                       label=short_label(group))  # fmt: skip
        assert val is not None
        ax_val.plot(np.arange(1, len(val) + 1), val * 100, marker="o", ms=3, color=color,
                    label=short_label(group))  # fmt: skip
        final = _metric_values(group, analysis.metric)
        lr_text = f"lr {lr[0]:.3g} -> {lr[-1]:.3g}" if lr is not None else "lr not logged"
        answer.sentences.append(
            f"{short_label(group)} ({lr_text} over {len(val)} epochs): {analysis.metric} "
            f"{_metric_text(final, analysis.metric)}."
        )
    ax_lr.set_xlabel("epoch (1 = first; lr at the epoch's start)")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("Learning rate per epoch")
    ax_val.set_xlabel("epoch (1 = first)")
    ax_val.set_ylabel("val/acc (%)")
    ax_val.set_title("Validation accuracy per epoch (mean over seeds)")
    for ax in (ax_lr, ax_val):
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    answer.figures.append(
        (
            "study_lr_curves",
            "Learning-rate schedule (left) beside validation accuracy (right).",
            fig,
        )
    )
    return answer
