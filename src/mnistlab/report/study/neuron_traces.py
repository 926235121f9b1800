"""Answer kind ``neuron_traces``: per-unit gradient traces, all zero vs identical vs differing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mnistlab.artifacts.figures import grid_figure
from mnistlab.report.collect import Job
from mnistlab.report.stats import (
    Analysis,
    short_label,
)
from mnistlab.report.study.common import (
    DIAGNOSTICS,
    Answer,
    _groups,
    _num,
    _read_csv,
    _seeds,
    _sig,
)

# --- neuron_traces: symmetry of zero init -----------------------------------------------------


def _traces(job: Job) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """layer -> (steps, grad norms steps x units) from ``neuron_grads.csv``."""
    cells: dict[str, dict[int, dict[int, float]]] = {}
    for row in _read_csv(job.path / DIAGNOSTICS / "neuron_grads.csv"):
        step, unit = int(_num(row["step"])), int(_num(row["unit"]))
        cells.setdefault(row["layer"], {}).setdefault(step, {})[unit] = _num(row["grad_norm"])
    out = {}
    for layer, by_step in cells.items():
        steps = sorted(by_step)
        units = sorted(by_step[steps[0]])
        out[layer] = (
            np.asarray(steps, dtype=float),
            np.asarray([[by_step[s].get(u, math.nan) for u in units] for s in steps]),
        )
    return out


def trace_verdict(values: np.ndarray, tol: float = 1e-5) -> str:
    """``all zero``, ``identical, non-zero`` (every step: all units within ``tol`` relative
    spread) or ``units differ``."""
    if np.all(values == 0):
        return "all zero"
    for row in values:
        mean = float(np.mean(np.abs(row)))
        if mean > 0 and (row.max() - row.min()) / mean >= tol:
            return "units differ"
    return "identical, non-zero"


def answer_neuron_traces(analysis: Analysis, spec: dict[str, Any]) -> Answer:
    """Per-neuron gradient traces per group: all zero vs identical but non-zero vs differing."""
    answer = Answer()
    data = [(g, [(j, _traces(j)) for j in g.finished if _traces(j)]) for g in _groups(analysis)]
    data = [(g, per_job) for g, per_job in data if per_job]
    if not data:
        answer.notes.append(
            "neuron_traces: no artifacts/diagnostics/neuron_grads.csv in the job folders "
            "(switch the diagnostic on: callbacks list `neuron_grads`)."
        )
        return answer
    header = ["group", "layer", "verdict (seeds)", "mean unit gradient norm", "max unit / min unit"]
    rows = []
    fig, axes = grid_figure(len(data), cols=min(4, len(data)), size=(4.0, 3.2))
    positive = [
        float(v[v > 0].min())
        for _, per_job in data
        for _, tr in per_job
        for _, (_, v) in tr.items()
        if (v > 0).any()
    ]
    floor = 10 ** math.floor(math.log10(min(positive))) if positive else 1e-8
    for ax, (group, per_job) in zip(axes, data, strict=True):
        verdicts = []
        for layer in per_job[0][1]:
            found = [trace_verdict(tr[layer][1]) for _, tr in per_job if layer in tr]
            counts = {v: found.count(v) for v in dict.fromkeys(found)}
            verdicts.append((layer, counts))
            values = [tr[layer][1] for _, tr in per_job if layer in tr]
            ratio = [
                float(v.max(axis=1).mean() / v.min(axis=1).mean())
                for v in values
                if v.min(axis=1).mean() > 0
            ]
            rows.append(
                [
                    group.label,
                    layer,
                    ", ".join(f"{k} ({n}/{len(found)})" for k, n in counts.items()),
                    _sig([float(np.mean(v)) for v in values]),
                    _sig(ratio),
                ]
            )
        first_layer = next(iter(per_job[0][1]))
        steps, values = per_job[0][1][first_layer]
        ax.plot(steps, values, lw=0.9, alpha=0.8)
        ax.set_yscale("symlog", linthresh=floor)
        verdict = next(iter(verdicts[0][1]))
        ax.set_title(f"{short_label(group)}\n{first_layer}: {verdict}", fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("unit weight-gradient norm")
        ax.grid(alpha=0.3)
        described = "; ".join(
            f"{layer} {next(iter(c))}" if len(c) == 1 else f"{layer} mixed ({c})"
            for layer, c in verdicts
        )
        answer.sentences.append(f"{short_label(group)}: {described} ({_seeds(len(per_job))}).")
    lo = min(ax.get_ylim()[0] for ax in axes)
    hi = max(ax.get_ylim()[1] for ax in axes)
    for ax in axes:
        ax.set_ylim(lo, hi)  # one shared axis: zero lines sit at 0 in every panel
    answer.tables.append(("Per-unit gradients over the first steps", (header, rows)))
    answer.figures.append(
        (
            "study_neuron_traces",
            "Gradient norm of each traced unit of the first hidden layer over the first steps "
            f"(first seed; one line per unit; shared axis, linear below {floor:g}). 'all zero' = "
            "no gradient at all; 'identical, non-zero' = every unit gets the same gradient "
            "(the symmetry problem).",
            fig,
        )
    )
    return answer
