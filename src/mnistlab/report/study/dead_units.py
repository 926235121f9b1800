"""Answer kind ``dead_units``: dead ReLU and saturated tanh/sigmoid units per layer per group.

Read from each job's ``activation_stats.json``: the units measured at initialization
(epoch 0), on the best checkpoint (the model the test metrics describe) and at the end of
training, each with its epoch. A run that kept no checkpoint was tested on its end weights:
its "best" column is that model, and the sentence says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnistlab.artifacts.figures import grid_figure
from mnistlab.report.collect import Job
from mnistlab.report.stats import (
    Analysis,
    Group,
    Stat,
    short_label,
)
from mnistlab.report.study.common import (
    DIAGNOSTICS,
    Answer,
    _colors,
    _groups,
    _pm,
    _seeds,
)

PHASES = ("init", "best", "end")


@dataclass
class Units:
    """One job's measurement: ``values[layer][phase]`` fractions, and the epoch of each phase."""

    layers: list[tuple[str, str, str]]  # (layer, kind, measure: dead or saturated)
    values: dict[str, dict[str, float]]
    epochs: dict[str, int]
    checkpoint: bool = True  # False: no best checkpoint, the test used the end weights


def _fraction(row: dict[str, Any]) -> tuple[str, float]:
    if row.get("dead_fraction") is not None:
        return "dead", float(row["dead_fraction"])
    if row.get("saturated_fraction") is not None:
        return "saturated", float(row["saturated_fraction"])
    return "", math.nan


def unit_fractions(job: Job) -> Units | None:
    """The job's :class:`Units` from ``activation_stats.json`` (None without the file)."""
    path = job.path / DIAGNOSTICS / "activation_stats.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return None
    checkpoint = isinstance(data.get("best"), dict)
    if not checkpoint and data.get("tested") == "end":
        data["best"] = data.get("end")  # the tested model
    if not all(isinstance(data.get(p), dict) for p in PHASES):
        return None
    layers, values = [], {}
    for phase in PHASES:
        for row in data[phase].get("layers", []):
            measure, value = _fraction(row)
            if not measure:
                continue
            if row["layer"] not in values:
                layers.append((row["layer"], str(row.get("kind", "")), measure))
            values.setdefault(row["layer"], {})[phase] = value
    epochs = {p: int(data[p].get("epoch", -1)) for p in PHASES}
    return Units(layers, values, epochs, checkpoint) if layers else None


def _epochs_text(units: list[Units], phase: str) -> str:
    """``3`` or ``2-4`` over seeds."""
    epochs = sorted({u.epochs[phase] for u in units})
    return str(epochs[0]) if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"


def _cells(units: list[Units], layer: str) -> dict[str, list[float]]:
    return {p: [u.values.get(layer, {}).get(p, math.nan) for u in units] for p in PHASES}


def _sentence(group: Group, units: list[Units], cells: list[dict[str, list[float]]]) -> str:
    layers = units[0].layers
    means = {p: [Stat.of(c[p]).mean * 100 for c in cells] for p in PHASES}
    overall = {p: float(np.nanmean(means[p])) if means[p] else math.nan for p in PHASES}
    worst = int(np.nanargmax(means["best"])) if not np.isnan(means["best"]).all() else 0
    measure = layers[0][2]
    which = "best checkpoint" if all(u.checkpoint for u in units) else "no checkpoint kept"
    if all(u.epochs["best"] == u.epochs["end"] for u in units):  # one trained model per job
        tested = f"({which} = end of training, epoch {_epochs_text(units, 'end')})"
    else:
        tested = (
            f"({which}, epoch {_epochs_text(units, 'best')}), {overall['end']:.1f}% at the "
            f"end (epoch {_epochs_text(units, 'end')})"
        )
    most = means["best"][worst]
    where = f"; most in {layers[worst][0]} ({most:.1f}%)" if most > 0 else ""
    return (
        f"{short_label(group)}: {overall['best']:.1f}% of hidden units {measure} in the tested "
        f"model {tested}, {overall['init']:.1f}% at initialization (mean over {len(layers)} "
        f"layers and {_seeds(len(units))}){where}."
    )


def answer_dead_units(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """Dead (rectifiers) and saturated (tanh/sigmoid) % per layer per group: init, best, end."""
    answer = Answer()
    data = []
    for group in _groups(analysis):
        units = [u for u in (unit_fractions(j) for j in group.finished) if u is not None]
        if units:
            data.append((group, units))
    if not data:
        answer.notes.append(
            "dead_units: no artifacts/diagnostics/activation_stats.json with init, best and end "
            "measurements in the job folders (switch the diagnostic on: callbacks list "
            "`activation_stats`)."
        )
        return answer
    header = ["group", "layer", "kind", "measure", "init %", "best %", "end %", "best / end epoch"]
    rows: list[list[str]] = []
    depth = max(len(u.layers) for _, units in data for u in units)
    fig, axes = grid_figure(3, cols=3, size=(4.6, 3.8))
    width = 0.8 / len(data)
    for gi, ((group, units), color) in enumerate(zip(data, _colors(len(data)), strict=True)):
        cells = [_cells(units, layer) for layer, _, _ in units[0].layers]
        epochs = f"{_epochs_text(units, 'best')} / {_epochs_text(units, 'end')}"
        for (layer, kind, measure), cell in zip(units[0].layers, cells, strict=True):
            pms = [_pm(cell[p], 100.0) for p in PHASES]
            rows.append([group.label, layer, kind, measure, *pms, epochs])
        for ax, phase in zip(axes, PHASES, strict=True):
            x = np.arange(1, len(cells) + 1) + (gi - (len(data) - 1) / 2) * width
            means = [Stat.of(c[phase]).mean * 100 for c in cells]
            ax.bar(
                x, np.nan_to_num(means), width=width * 0.9, color=color, label=short_label(group)
            )
            for xi, cell in zip(x, cells, strict=True):
                ys = [v * 100 for v in cell[phase] if not math.isnan(v)]
                ax.scatter([xi] * len(ys), ys, s=8, color="black", zorder=3)
        answer.sentences.append(_sentence(group, units, cells))
    every = [u for _, units in data for u in units]
    titles = {
        "init": "at initialization (epoch 0)",
        "best": f"best checkpoint, tested (epoch {_epochs_text(every, 'best')})",
        "end": f"end of training (epoch {_epochs_text(every, 'end')})",
    }
    for ax, phase in zip(axes, PHASES, strict=True):
        ax.set_ylim(0, 100)
        ax.set_xticks(range(1, depth + 1))
        ax.set_xlabel("activation layer (1 = input side)")
        ax.set_ylabel("% units dead (ReLU) / saturated (tanh, sigm.)")
        ax.set_title(titles[phase], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    answer.tables.append(
        (
            "Dead / saturated units per layer (% of units, mean ± std over seeds): at "
            "initialization, on the best checkpoint (the model the test metrics describe) and "
            "at the end of training; epochs count 1..n, a range spans the seeds",
            (header, rows),
        )
    )
    answer.figures.append(
        (
            "study_dead_units",
            "Dead (ReLU-like: never positive on 512 validation images) or saturated "
            "(|tanh/sigmoid output| > 0.99) share per layer and group, on one 0-100% axis, at "
            "initialization, on the tested best checkpoint and at the end; dots are single seeds.",
            fig,
        )
    )
    return answer
