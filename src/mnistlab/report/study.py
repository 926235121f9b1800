"""The study-aware first section of a sweep report: the study's question and its answer.

A study (``conf/experiment/<name>.yaml``) declares what its answer is made of::

    report:
      question: Does a too-high learning rate kill ReLU units?
      answer:
        - kind: dead_units          # one of ANSWERS below
        - kind: metric_vs
          x: optimizer.lr
          log_x: true

Hydra saves the composed config in every job's ``.hydra/config.yaml``; the report reads
the block from there, computes each answer from the job folders (mean over seeds, per-seed
spread), writes one sentence with numbers, and draws the groups on shared axes.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure

from mnistlab.artifacts.figures import grid_figure
from mnistlab.report.collect import Job
from mnistlab.report.stats import (
    Analysis,
    Group,
    Stat,
    amount,
    higher_is_better,
    is_percent,
    short_label,
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


def _best_epoch(job: Job) -> int | None:
    value = job.metrics.get("best_epoch")
    return int(value) if isinstance(value, (int, float)) else None


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
            ax_steps.plot(steps, np.exp(np.nanmean(np.log(ratios), axis=0)), color=color, lw=1.3)
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
            f"(mean over {len(per_job)} seeds; {analysis.metric} "
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


# --- dead_units: dead ReLU / saturated tanh-sigmoid units -------------------------------------


def _unit_fractions(job: Job) -> dict[str, dict[int, tuple[str, str, float]]]:
    """layer -> epoch -> (kind, measure, fraction) from ``activation_stats.csv`` (epoch -1 = init)."""
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
        return epochs[-1][2] if -1 in epochs else math.nan
    trained = sorted(e for e in epochs if e >= 0)
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
        answer.sentences.append(f"{short_label(group)}: {described} ({len(per_job)} seeds).")
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


# --- gap: train vs validation ----------------------------------------------------------------


def _series(job: Job, key: str) -> np.ndarray:
    return np.asarray([r.get(key, math.nan) for r in job.history], dtype=float)


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
            best = _best_epoch(job)
            best = best if best is not None and best < n else int(np.nanargmax(val[:n]))
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
        answer.sentences.append(
            f"{short_label(group)}: train accuracy is {Stat.of(at_best).mean * 100:.2f} points "
            f"above validation at the best epoch ({Stat.of(at_end).mean * 100:.2f} at the end)."
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
    ax.set_ylabel("train/acc - val/acc (points)")
    ax.set_title("Generalization gap per group (mean over seeds; band = seed min-max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    answer.tables.append(("Train vs validation accuracy (mean ± std over seeds)", (header, rows)))
    answer.figures.append(
        (
            "study_gap",
            "Train minus validation accuracy per epoch, one shared axis (accuracy, not loss: "
            "the train loss includes penalties such as L1, the validation loss does not). "
            "train/acc is the running average over each epoch, with dropout and augmentation on.",
            fig,
        )
    )
    return answer


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
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if len(by_objective) > 1:
        answer.sentences.append(
            "The losses of different objectives ("
            + ", ".join(by_objective)
            + ") measure different things and are not compared; compare accuracy."
        )
    answer.figures.append(
        (
            "study_objectives",
            "Validation accuracy of every group on one axis; each objective's loss in its own "
            "panel (an MSE value and a cross-entropy value are not on one scale).",
            fig,
        )
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
                    f"{len(values)} seeds (range {_fmt_mean(min(values), metric)} - "
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
                    "—" if best is None else str(best + 1),
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
        ax.set_ylabel("val/acc (%)")
        ax.set_title("Validation accuracy per seed: the seed-to-seed spread")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        answer.figures.append(("study_seeds", "Validation accuracy of every seed.", fig))
    return answer


ANSWERS: dict[str, Callable[[Analysis, dict[str, Any]], Answer]] = {
    "grad_norms": answer_grad_norms,
    "dead_units": answer_dead_units,
    "neuron_traces": answer_neuron_traces,
    "gap": answer_gap,
    "metric_vs": answer_metric_vs,
    "lr_curves": answer_lr_curves,
    "groups": answer_groups,
    "objectives": answer_objectives,
    "seed_spread": answer_seed_spread,
}


def build_study(analysis: Analysis) -> Study | None:
    """The study section of ``analysis``' jobs, or None when their config has no ``report`` block."""
    question, specs = study_spec(analysis.jobs)
    if not specs and not question:
        return None
    total = Answer()
    kinds = []
    for spec in specs:
        kind = str(spec.get("kind", ""))
        build = ANSWERS.get(kind)
        if build is None:
            total.notes.append(f"unknown answer kind {kind!r}; known: {', '.join(ANSWERS)}")
            continue
        kinds.append(kind)
        part = build(analysis, spec)
        total.sentences += part.sentences
        total.tables += part.tables
        total.figures += part.figures
        total.notes += part.notes
    return Study(study_name(analysis.jobs), question, kinds, total)
