"""Answer kind ``metric_vs``: the optimized metric against one numeric hyperparameter."""

from __future__ import annotations

import math
from typing import Any

import yaml

from mnistlab.artifacts.figures import grid_figure
from mnistlab.report.stats import (
    Analysis,
    Group,
    Stat,
    amount,
    higher_is_better,
    is_percent,
)
from mnistlab.report.study.common import (
    Answer,
    _colors,
    _groups,
    _metric_text,
    _metric_values,
    _num,
)

# --- metric_vs: accuracy against one numeric hyperparameter ----------------------------------


def x_value(group: Group, key: str, transform: str | None = None) -> float:
    """The group's value of ``key`` (override, else its config) as a number; lists become their
    length (``transform: depth``) or first element (``width``)."""
    raw: Any = group.params.get(key)
    if raw is None and group.finished:
        raw = group.finished[0].setting(key)
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError:
            return math.nan
    if isinstance(raw, list):
        if transform == "depth":
            return float(len(raw))
        raw = raw[0] if raw else math.nan
    return _num(raw)


def answer_metric_vs(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """The optimized metric (and test/acc) against one hyperparameter, mean ± std, seeds as dots."""
    key, transform = str(spec["x"]), spec.get("transform")
    log_x = bool(spec.get("log_x", False))
    label = spec.get("x_label") or (f"{key} ({transform})" if transform else key)
    answer = Answer()
    others = [k for k in analysis.varying if k != key]
    series: dict[str, list[tuple[float, Group]]] = {}
    for group in _groups(analysis):
        x = x_value(group, key, transform)
        if not math.isnan(x):
            rest = "+".join(group.params.get(k, "") for k in others) or "all"
            series.setdefault(rest, []).append((x, group))
    if not series:
        answer.notes.append(f"metric_vs: no numeric value of {key} in the jobs.")
        return answer
    metrics = list(dict.fromkeys((analysis.metric, "test/acc")))
    fig, axes = grid_figure(len(metrics), cols=len(metrics), size=(6.0, 4.2))
    header = [label, *([f"({', '.join(others)})"] if others else []), *metrics]
    rows = []
    better = max if higher_is_better(analysis.metric) else min
    for ax, metric in zip(axes, metrics, strict=True):
        scale = 100.0 if is_percent(metric) else 1.0
        for (rest, points), color in zip(series.items(), _colors(len(series)), strict=True):
            points.sort(key=lambda p: p[0])
            xs = [p[0] for p in points]
            stats = [Stat.of(_metric_values(g, metric)) for _, g in points]
            ax.errorbar(
                xs,
                [s.mean * scale for s in stats],
                yerr=[0 if math.isnan(s.std) else s.std * scale for s in stats],
                marker="o",
                capsize=3,
                color=color,
                label=rest if others else None,
            )
            for x, g in points:
                ys = [v * scale for v in _metric_values(g, metric)]
                ax.scatter([x] * len(ys), ys, s=9, color="black", zorder=3)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(label + (" (log axis)" if log_x else ""))
        ax.set_ylabel(metric + (" (%)" if scale == 100 else ""))
        ax.set_title(f"{metric} vs {label} (mean ± std; dots = seeds)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        if others:
            ax.legend(fontsize=8)
    for rest, points in series.items():
        for x, g in points:
            rows.append(
                [
                    f"{x:g}",
                    *([rest] if others else []),
                    *[_metric_text(_metric_values(g, m), m) for m in metrics],
                ]
            )
        scored = [(Stat.of(_metric_values(g, analysis.metric)).mean, x) for x, g in points]
        top = better(scored)
        low = min(scored) if better is max else max(scored)
        prefix = f"{rest}: " if others else ""
        answer.sentences.append(
            f"{prefix}{analysis.metric} is best at {label} = {top[1]:g} "
            f"({_fmt_mean(top[0], analysis.metric)}) and worst at {low[1]:g} "
            f"({_fmt_mean(low[0], analysis.metric)}), a spread of "
            f"{amount(abs(top[0] - low[0]), analysis.metric)}"
            f"{' points' if is_percent(analysis.metric) else ''} over "
            f"{min(points)[0]:g}-{max(points)[0]:g}."
        )
    answer.tables.append((f"{', '.join(metrics)} by {label}", (header, rows)))
    answer.figures.append(
        (
            f"study_vs_{key.replace('.', '_')}",
            f"{', '.join(metrics)} against {label}: mean ± std over seeds, dots = seeds"
            + (", log x axis" if log_x else "")
            + ".",
            fig,
        )
    )
    return answer


def _fmt_mean(value: float, metric: str) -> str:
    return f"{value * 100:.2f}%" if is_percent(metric) else f"{value:.4g}"
