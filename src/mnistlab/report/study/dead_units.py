"""Answer kind ``dead_units``: dead ReLU and saturated tanh/sigmoid units per layer per group."""

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
    _best_epoch,
    _colors,
    _groups,
    _num,
    _pm,
    _read_csv,
)

# --- dead_units: dead ReLU / saturated tanh-sigmoid units -------------------------------------


def _unit_fractions(job: Job) -> dict[str, dict[int, tuple[str, str, float]]]:
    """layer -> epoch -> (kind, measure, fraction) from ``activation_stats.csv`` (epoch 0 = init)."""
    found: dict[str, dict[int, tuple[str, str, float]]] = {}
    for row in _read_csv(job.path / DIAGNOSTICS / "activation_stats.csv"):
        dead, saturated = _num(row.get("dead_fraction")), _num(row.get("saturated_fraction"))
        measure, value = ("dead", dead) if not math.isnan(dead) else ("saturated", saturated)
        if math.isnan(value):
            continue
        layer = row["layer"]
        found.setdefault(layer, {})[int(_num(row["epoch"]))] = (row.get("kind", ""), measure, value)
    return found


def _at(epochs: dict[int, tuple[str, str, float]], phase: str, best: int | None) -> float:
    if phase == "init":
        return epochs[0][2] if 0 in epochs else math.nan
    trained = sorted(e for e in epochs if e >= 1)
    if not trained:
        return math.nan
    if phase == "end":
        return epochs[trained[-1]][2]
    if best is None:
        return math.nan
    before = [e for e in trained if e <= best]  # the last measurement up to the best epoch
    return epochs[before[-1]][2] if before else math.nan


PHASES = ("init", "best", "end")
PHASE_TITLES = {
    "init": "at initialization",
    "best": "at the best epoch (test checkpoint)",
    "end": "at the end of training",
}


def answer_dead_units(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """Dead (rectifiers) and saturated (tanh/sigmoid) % per layer per group: init, best, end."""
    answer = Answer()
    data = []
    for group in _groups(analysis):
        per_job = [(j, _unit_fractions(j)) for j in group.finished]
        per_job = [(j, f) for j, f in per_job if f]
        if per_job:
            data.append((group, per_job))
    if not data:
        answer.notes.append(
            "dead_units: no artifacts/diagnostics/activation_stats.csv in the job folders "
            "(switch the diagnostic on: callbacks list `activation_stats`)."
        )
        return answer
    header = ["group", "layer", "kind", "measure", "init %", "best epoch %", "end %"]
    rows: list[list[str]] = []
    depth = max(len(f) for _, per_job in data for _, f in per_job)
    fig, axes = grid_figure(3, cols=3, size=(4.6, 3.8))
    width = 0.8 / len(data)
    for gi, ((group, per_job), color) in enumerate(zip(data, _colors(len(data)), strict=True)):
        layers = list(per_job[0][1])
        per_phase: dict[str, list[list[float]]] = {p: [] for p in PHASES}
        kinds = []
        for layer in layers:
            kind, measure, _ = next(iter(per_job[0][1][layer].values()))
            kinds.append((kind, measure))
            cells = {
                p: [_at(f.get(layer, {}), p, _best_epoch(j)) for j, f in per_job] for p in PHASES
            }
            for p in PHASES:
                per_phase[p].append(cells[p])
            rows.append(
                [group.label, layer, kind, measure, *[_pm(cells[p], 100.0) for p in PHASES]]
            )
        for ax, phase in zip(axes, PHASES, strict=True):
            x = np.arange(1, len(layers) + 1) + (gi - (len(data) - 1) / 2) * width
            means = [Stat.of(v).mean * 100 for v in per_phase[phase]]
            ax.bar(
                x, np.nan_to_num(means), width=width * 0.9, color=color, label=short_label(group)
            )
            for xi, seeds in zip(x, per_phase[phase], strict=True):
                ys = [v * 100 for v in seeds if not math.isnan(v)]
                ax.scatter([xi] * len(ys), ys, s=8, color="black", zorder=3)
        measure = kinds[0][1]
        summary = []
        for phase in ("init", "best", "end"):
            layer_means = [Stat.of(v).mean for v in per_phase[phase]]
            finite = [v for v in layer_means if not math.isnan(v)]
            summary.append(float(np.mean(finite)) * 100 if finite else math.nan)
        worst = int(np.nanargmax([Stat.of(v).mean for v in per_phase["end"]]))
        worst_value = Stat.of(per_phase["end"][worst]).mean * 100
        answer.sentences.append(
            f"{short_label(group)}: {summary[2]:.1f}% of hidden units {measure} at the end "
            f"(mean over {len(layers)} layers and {len(per_job)} seeds; {summary[0]:.1f}% at "
            f"initialization, {summary[1]:.1f}% at the best epoch); most in {layers[worst]} "
            f"({worst_value:.1f}%)."
        )
    for ax, phase in zip(axes, PHASES, strict=True):
        ax.set_ylim(0, 100)
        ax.set_xticks(range(1, depth + 1))
        ax.set_xlabel("activation layer (1 = input side)")
        ax.set_ylabel("% units dead (ReLU) / saturated (tanh, sigm.)")
        ax.set_title(PHASE_TITLES[phase], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    answer.tables.append(
        (
            "Dead / saturated units per layer (% of units, mean ± std over seeds; best epoch = "
            "the checkpoint the test metrics use)",
            (header, rows),
        )
    )
    answer.figures.append(
        (
            "study_dead_units",
            "Dead (ReLU-like: never positive on 512 validation images) or saturated "
            "(|tanh/sigmoid output| > 0.99) share per layer and group, on one 0-100% axis; "
            "dots are single seeds.",
            fig,
        )
    )
    return answer
