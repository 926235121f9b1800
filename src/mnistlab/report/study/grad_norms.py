"""Answer kind ``grad_norms``: gradient norm by layer per group, and the first/last-layer ratio."""

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
    DIAGNOSTICS,
    Answer,
    _colors,
    _groups,
    _metric_text,
    _metric_values,
    _num,
    _read_csv,
    _seeds,
    _sig,
)

# --- grad_norms: vanishing gradients ---------------------------------------------------------


def _grad_rows(job: Job) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(layer names, steps, norms steps x layers) from ``grad_norms.csv``."""
    rows = _read_csv(job.path / DIAGNOSTICS / "grad_norms.csv")
    if not rows:
        return [], np.empty(0), np.empty((0, 0))
    layers = [k for k in rows[0] if k not in ("step", "epoch")]
    steps = np.asarray([_num(r["step"]) for r in rows])
    norms = np.asarray([[_num(r.get(k)) for k in layers] for r in rows])
    return layers, steps, norms


def grad_ratio(norms: np.ndarray, steps: np.ndarray, first_steps: int | None = None) -> float:
    """Mean first-layer gradient norm / mean last-layer norm (over steps < ``first_steps``)."""
    keep = steps < first_steps if first_steps is not None else np.ones(len(steps), bool)
    if not keep.any():
        return math.nan
    first, last = np.nanmean(norms[keep, 0]), np.nanmean(norms[keep, -1])
    return float(first / last) if last > 0 else math.nan


def answer_grad_norms(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """Gradient norm by layer per group (shared log axis) and the first/last-layer ratio."""
    n_first = int(spec.get("first_steps", 100))
    answer = Answer()
    data = []
    for group in _groups(analysis):
        per_job = [(j, *_grad_rows(j)) for j in group.finished]
        per_job = [p for p in per_job if p[1]]
        if per_job:
            data.append((group, per_job))
    if not data:
        answer.notes.append(
            "grad_norms: no artifacts/diagnostics/grad_norms.csv in the job folders "
            "(switch the diagnostic on: callbacks list `grad_norms`)."
        )
        return answer
    header = [
        "group",
        "weight layers",
        f"first/last ratio, steps < {n_first}",
        "first/last ratio, whole run",
        "first-layer norm",
        "last-layer norm",
        analysis.metric,
    ]
    rows = []
    fig, (ax_depth, ax_steps) = grid_figure(2, cols=2, size=(6.4, 4.4))
    for (group, per_job), color in zip(data, _colors(len(data)), strict=True):
        early = [grad_ratio(n, s, n_first) for _, _, s, n in per_job]
        whole = [grad_ratio(n, s) for _, _, s, n in per_job]
        means = [np.nanmean(n, axis=0) for _, _, _, n in per_job]
        depth = max(len(m) for m in means)
        profile = np.full((len(means), depth), np.nan)
        for i, m in enumerate(means):
            profile[i, : len(m)] = m
        x = np.arange(1, depth + 1)
        label = short_label(group)
        ax_depth.plot(x, np.nanmean(profile, axis=0), marker="o", color=color, label=label)
        if len(means) > 1:
            ax_depth.fill_between(
                x, np.nanmin(profile, axis=0), np.nanmax(profile, axis=0), color=color, alpha=0.15
            )
        length = min(len(s) for _, _, s, _ in per_job)
        steps = per_job[0][2][:length]
        ratios = np.stack([n[:length, 0] / n[:length, -1] for _, _, _, n in per_job])
        with np.errstate(all="ignore"):
            marker = "o" if length <= 20 else None  # a short run: a few points, not a line
            ax_steps.plot(steps, np.exp(np.nanmean(np.log(ratios), axis=0)), color=color, lw=1.3,
                          marker=marker, ms=4)  # fmt: skip
        rows.append(
            [
                group.label,
                str(depth),
                _sig(early),
                _sig(whole),
                _sig([float(m[0]) for m in means]),
                _sig([float(m[-1]) for m in means]),
                _metric_text(_metric_values(group, analysis.metric), analysis.metric),
            ]
        )
        answer.sentences.append(
            f"{label}: the first layer gets {Stat.of(early).mean:.3g}x the last layer's gradient "
            f"over the first {n_first} steps and {Stat.of(whole).mean:.3g}x over the whole run "
            f"(mean over {_seeds(len(per_job))}; {analysis.metric} "
            f"{_metric_text(_metric_values(group, analysis.metric), analysis.metric)})."
        )
    for ax in (ax_depth, ax_steps):
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    ax_depth.set_xlabel("weight layer (1 = input side; last = head)")
    ax_depth.set_ylabel("mean weight-gradient L2 norm")
    ax_depth.set_title("Gradient norm by layer (mean over seeds; band = seed min-max)")
    ax_depth.legend(fontsize=8)
    ax_steps.axvline(n_first, color="black", lw=0.8, ls="--")
    ax_steps.axhline(1.0, color="grey", lw=0.8)
    ax_steps.set_xlabel(f"optimizer step (dashed: the first {n_first} steps)")
    ax_steps.set_ylabel("first-layer / last-layer gradient norm")
    ax_steps.set_title("First/last-layer ratio over training (geometric mean over seeds)")
    answer.tables.append(("Gradient norms per group (mean ± std over seeds)", (header, rows)))
    answer.figures.append(
        (
            "study_grad_norms",
            "Gradient norm by layer and first/last-layer ratio per group, one shared log axis "
            "each: equal heights mean equal gradients.",
            fig,
        )
    )
    return answer
