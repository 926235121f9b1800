"""Answer kinds ``groups``, ``objectives`` and ``seed_spread``: the comparison of the groups itself."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mnistlab.artifacts.figures import grid_figure
from mnistlab.report.stats import (
    Analysis,
    Group,
    is_percent,
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
    _seeds,
)
from mnistlab.report.study.gap import _series
from mnistlab.report.study.lr_curves import _mean_curve
from mnistlab.report.study.metric_vs import _fmt_mean

# --- groups / objectives / seed_spread: the comparison itself ---------------------------------


def answer_groups(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """The ranking in one sentence: best and worst group with mean ± std over seeds."""
    answer = Answer()
    groups = [g for g in analysis.groups if g.rank is not None]
    if not groups:
        answer.notes.append("groups: no finished job with the metric.")
        return answer
    metric = analysis.metric
    parts = [f"{short_label(g)} {_metric_text(_metric_values(g, metric), metric)}" for g in groups]
    answer.sentences.append(f"{metric}, best first: " + "; ".join(parts) + ".")
    test = [g for g in groups if _metric_values(g, "test/acc")]
    if test and metric != "test/acc":
        answer.sentences.append(
            "test/acc: "
            + "; ".join(
                f"{short_label(g)} {_metric_text(_metric_values(g, 'test/acc'), 'test/acc')}"
                for g in test
            )
            + "."
        )
    figure = difference_figure(analysis)
    if figure is not None:
        answer.figures.append(
            (
                "study_differences",
                f"Each configuration's {metric} minus the best one's, with its 95% confidence "
                "interval over seeds (Welch); an interval crossing 0 is inside the seed noise.",
                figure,
            )
        )
    return answer


def difference_figure(analysis: Analysis) -> Figure | None:
    """Forest plot: difference to the best group with its Welch 95% CI, one row per group."""
    from mnistlab.report.stats import compare_to_best

    comparisons = compare_to_best(analysis)
    if not comparisons:
        return None
    scale = 100.0 if is_percent(analysis.metric) else 1.0
    fig, (ax,) = grid_figure(1, size=(8.0, 1.2 + 0.4 * len(comparisons)))
    y = np.arange(len(comparisons))[::-1]
    for yi, c in zip(y, comparisons, strict=True):
        diff = -c.diff * scale  # other - best: negative = worse for higher-is-better metrics
        color = "0.55" if c.within_noise else "C3"
        if c.testable:
            ax.plot([-c.ci[1] * scale, -c.ci[0] * scale], [yi, yi], color=color, lw=2)
        ax.plot([diff], [yi], "o", color=color)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [short_label(c.other) for c in comparisons], fontsize=8)
    unit = "points" if scale == 100 else "metric units"
    ax.set_xlabel(f"{analysis.metric}: other - best ({unit}); grey = inside seed noise")
    ax.set_title(f"Difference to the best configuration ({short_label(comparisons[0].best)})")
    ax.grid(axis="x", alpha=0.3)
    return fig


def objective(group: Group) -> str:
    """The training objective of a group (``module.loss``; ``ce`` when not set)."""
    value = group.params.get("module.loss")
    if value is None and group.finished:
        value = group.finished[0].setting("module.loss")
    return str(value or "ce")


def answer_objectives(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """Groups with different losses: accuracy on one shared axis, each loss in its own panel."""
    answer = answer_groups(analysis, spec)
    groups = _groups(analysis)
    by_objective: dict[str, list[Group]] = {}
    for group in groups:
        by_objective.setdefault(objective(group), []).append(group)
    fig, axes = grid_figure(1 + len(by_objective), cols=1 + len(by_objective), size=(5.0, 4.0))
    colors = dict(zip([g.label for g in groups], _colors(len(groups)), strict=True))
    for group in groups:
        val = _mean_curve(group, "val/acc")
        if val is not None:
            axes[0].plot(np.arange(1, len(val) + 1), val * 100, marker="o", ms=3,
                         color=colors[group.label], label=short_label(group), gid=objective(group))  # fmt: skip
    axes[0].set_title("val/acc per epoch (comparable across objectives)", fontsize=10)
    axes[0].set_ylabel("val/acc (%)")
    for ax, (name, members) in zip(axes[1:], by_objective.items(), strict=True):
        for group in members:
            loss = _mean_curve(group, "val/loss")
            if loss is not None:
                ax.plot(np.arange(1, len(loss) + 1), loss, marker="o", ms=3,
                        color=colors[group.label], label=short_label(group), gid=name)  # fmt: skip
        ax.set_title(f"val/loss of objective {name} only", fontsize=10)
        ax.set_ylabel(f"val/loss ({name})")
    for ax in axes:
        ax.set_xlabel("epoch (1 = first)")
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if len(by_objective) > 1:
        answer.sentences.append(
            "The losses of different objectives ("
            + ", ".join(by_objective)
            + ") measure different things and are not compared; compare accuracy."
        )
    answer.figures.insert(  # the key figure: accuracy shared, each loss on its own
        0,
        (
            "study_objectives",
            "Validation accuracy of every group on one axis; each objective's loss in its own "
            "panel (an MSE value and a cross-entropy value are not on one scale).",
            fig,
        ),
    )
    return answer


def answer_seed_spread(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """One configuration over seeds: mean ± std, range, and each seed's value."""
    answer = Answer()
    header = ["group", "seed", analysis.metric, "test/acc", "best epoch (1 = first)"]
    rows = []
    for group in _groups(analysis):
        for metric in dict.fromkeys((analysis.metric, "test/acc")):
            values = _metric_values(group, metric)
            if values:
                answer.sentences.append(
                    f"{short_label(group)}: {metric} {_metric_text(values, metric)} over "
                    f"{_seeds(len(values))} (range {_fmt_mean(min(values), metric)} - "
                    f"{_fmt_mean(max(values), metric)}); a difference smaller than this spread "
                    "is seed noise."
                )
        for job in group.finished:
            best = _best_epoch(job)
            rows.append(
                [
                    group.label,
                    str(job.seed),
                    _fmt_mean(job.metric(analysis.metric), analysis.metric),
                    _fmt_mean(job.metric("test/acc"), "test/acc"),
                    "—" if best is None else str(best),
                ]
            )
    if rows:
        answer.tables.append(("Per seed", (header, rows)))
    jobs = [(g, j) for g in _groups(analysis) for j in g.finished if len(_series(j, "val/acc"))]
    if jobs:
        fig, (ax,) = grid_figure(1, size=(8.0, 4.0))
        for (group, job), color in zip(jobs, _colors(len(jobs)), strict=True):
            val = _series(job, "val/acc") * 100
            ax.plot(np.arange(1, len(val) + 1), val, marker="o", ms=3, color=color,
                    label=f"{short_label(group)} seed {job.seed}")  # fmt: skip
        ax.set_xlabel("epoch (1 = first)")
        _epoch_axis(ax)
        ax.set_ylabel("val/acc (%)")
        ax.set_title("Validation accuracy per seed: the seed-to-seed spread")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        answer.figures.append(("study_seeds", "Validation accuracy of every seed.", fig))
    return answer
