"""The report's charts, each a function of the analysis returning a matplotlib Figure (Agg, no GUI)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import yaml
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

from mnistlab.report.stats import Analysis, Group, higher_is_better

MAX_CURVE_GROUPS = 20  # more groups than this: only the best ones get curves


def _colors(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _short(label: str, width: int = 48) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def compact(value: str, width: int = 24) -> str:
    """Short tick text: ``[256,256,...]`` of one repeated element becomes ``[256]x8``; long text is clipped."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = None
    if isinstance(parsed, list) and len(parsed) > 1 and all(v == parsed[0] for v in parsed):
        return f"[{parsed[0]}]x{len(parsed)}"
    return value if len(value) <= width else value[: width - 3] + "..."


def _ranked(analysis: Analysis) -> list[Group]:
    return [g for g in analysis.groups if g.rank is not None]


def metric_bars(
    analysis: Analysis, metrics: tuple[str, ...] = ("val/acc_best", "test/acc")
) -> Figure | None:
    """Horizontal bars of mean +- std per group (best on top), seeds as dots."""
    groups = _ranked(analysis)
    metrics = tuple(dict.fromkeys((analysis.metric, *metrics)))
    metrics = tuple(m for m in metrics if any(g.stats.get(m) and g.stats[m].n for g in groups))
    if not groups or not metrics:
        return None
    height = 0.8 / len(metrics)
    fig = Figure(
        figsize=(9, 1.2 + 0.45 * len(groups) * max(1, len(metrics) * 0.7)), layout="constrained"
    )
    ax = fig.subplots()
    y = np.arange(len(groups))[::-1]
    lows = []
    for i, (metric, color) in enumerate(zip(metrics, _colors(len(metrics)), strict=True)):
        stats = [g.stats.get(metric) for g in groups]
        means = np.asarray([s.mean if s else np.nan for s in stats])
        stds = np.asarray([0.0 if not s or math.isnan(s.std) else s.std for s in stats])
        pos = y + (len(metrics) - 1 - 2 * i) * height / 2
        ax.barh(
            pos,
            means,
            height=height * 0.9,
            xerr=stds,
            capsize=3,
            color=color,
            alpha=0.85,
            label=f"{metric} (mean +- std)",
        )
        for p, g in zip(pos, groups, strict=True):
            vals = [j.metric(metric) for j in g.finished]
            ax.scatter(vals, [p] * len(vals), s=9, color="black", zorder=3)
            lows += [v for v in vals if not math.isnan(v)]
    ax.set_yticks(y, [_short(g.label) for g in groups], fontsize=8)
    if lows and all(m.endswith(("acc", "acc_best", "f1_macro")) for m in metrics):
        lo, hi = min(lows), max(lows)
        pad = max(0.01, (hi - lo) * 0.15)
        ax.set_xlim(max(0.0, lo - pad), min(1.0, hi + pad) if hi + pad <= 1 else hi + pad * 0.3)
    # said only of an axis that really starts above 0 (a zoomed bar's length means nothing)
    zoom = " (axis zoomed: it does not start at 0)" if ax.get_xlim()[0] > 0 else ""
    ax.set_xlabel(f"score{zoom}; dots = single seeds")
    ax.set_title(f"Groups ranked by mean {analysis.metric} (best on top)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _curve(group: Group, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    series = [[r.get(key, math.nan) for r in j.history] for j in group.finished if j.history]
    series = [s for s in series if any(not math.isnan(v) for v in s)]
    if not series:
        return None
    length = max(len(s) for s in series)
    values = np.full((len(series), length), np.nan)
    for i, s in enumerate(series):
        values[i, : len(s)] = s
    with np.errstate(all="ignore"), _quiet():
        return (
            np.arange(1, length + 1),
            np.nanmean(values, axis=0),
            np.nan_to_num(np.nanstd(values, axis=0)),
        )


class _quiet:
    """Silence numpy's 'mean of empty slice' for epochs only some seeds reached."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def curve_overlay(
    analysis: Analysis, keys: tuple[str, ...], titles: tuple[str, ...], gap: bool = False
) -> Figure | None:
    """Per-epoch mean over seeds (band = +- std) of history columns, one line per group."""
    groups = (_ranked(analysis) or analysis.groups)[:MAX_CURVE_GROUPS]
    panels = []
    for key in keys:
        curves = []
        for g in groups:
            if gap:
                train, val = _curve(g, f"train/{key}"), _curve(g, f"val/{key}")
                better, worse = (val, train) if "loss" in key else (train, val)
                curve = None if train is None or val is None else _gap(better, worse)
            else:
                curve = _curve(g, key)
            curves.append(curve)
        if any(c is not None for c in curves):
            panels.append((key, curves))
    if not panels:
        return None
    fig = Figure(figsize=(6.2 * len(panels) + 3.5, 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = _colors(len(groups))
    for ax, (key, curves), title in zip(axes, panels, titles, strict=False):
        for g, curve, color in zip(groups, curves, colors, strict=True):
            if curve is None:
                continue
            x, mean, std = curve
            ax.plot(x, mean, color=color, lw=1.6, marker="o", ms=3, label=_short(g.label, 40))
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15)
        if gap:
            ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        gap_label = f"val/{key} - train/{key}" if "loss" in key else f"train/{key} - val/{key}"
        ax.set_ylabel(gap_label if gap else key)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def _gap(a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve of ``a`` minus mean curve of ``b`` over their common epochs."""
    n = min(len(a[0]), len(b[0]))
    return a[0][:n], a[1][:n] - b[1][:n], np.zeros(n)


def _axis_values(values: list[str]) -> tuple[np.ndarray, list[tuple[float, str]], bool]:
    """Map one hyperparameter's values to [0, 1]: numeric (log if it spans > 1 decade) or categorical."""
    try:
        numbers = np.asarray([float(v) for v in values])
        numeric = bool(np.isfinite(numbers).all())
    except (TypeError, ValueError):
        numeric = False
    if numeric and len(set(values)) > 1:
        log = bool((numbers > 0).all() and numbers.max() / numbers.min() > 10)
        scaled = np.log10(numbers) if log else numbers
        lo, hi = scaled.min(), scaled.max()
        pos = (scaled - lo) / (hi - lo)
        ticks = sorted({(float(p), v) for p, v in zip(pos, values, strict=True)})
        return pos, ticks, log
    cats = sorted(set(values), key=lambda v: (len(v), v))
    where = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
    return np.asarray([where[v] for v in values]), [(where[c], c) for c in cats], False


def parallel_coordinates(analysis: Analysis) -> Figure | None:
    """One line per finished job across the swept hyperparameters and the metric, coloured by the metric."""
    jobs = [j for j in analysis.jobs if j.ok and not math.isnan(j.metric(analysis.metric))]
    if not analysis.varying or len(jobs) < 2:
        return None
    columns = []
    for key in analysis.varying:
        pos, ticks, log = _axis_values([str(j.overrides.get(key, "")) for j in jobs])
        columns.append((key + (" (log)" if log else ""), pos, ticks))
    metric = np.asarray([j.metric(analysis.metric) for j in jobs])
    span = metric.max() - metric.min()
    mpos = (metric - metric.min()) / span if span > 0 else np.full(len(jobs), 0.5)
    mticks = [
        (float(p), f"{v:.4g}")
        for p, v in zip(
            np.linspace(0, 1, 5), np.linspace(metric.min(), metric.max(), 5), strict=True
        )
    ]
    columns.append((analysis.metric, mpos, mticks))
    fig = Figure(figsize=(max(8.0, 2.6 * len(columns) + 2), 5.0), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    order = np.argsort(
        metric if higher_is_better(analysis.metric) else -metric
    )  # best drawn last (on top)
    data = np.stack([c[1] for c in columns], axis=1)
    for i in order:
        ax.plot(range(len(columns)), data[i], color=cmap(mpos[i]), lw=1.4, alpha=0.85)
    for x, (_, _, ticks) in enumerate(columns):
        ax.axvline(x, color="black", lw=0.8)
        for p, text in ticks[:12]:
            ax.text(x + 0.03, p, compact(str(text)), fontsize=7, va="center")
    ax.set_xticks(range(len(columns)), [_short(c[0], 20) for c in columns], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(columns) - 0.4)
    ax.set_ylim(-0.05, 1.05)
    sm = colormaps["viridis"]
    mappable = _scalar_mappable(sm, metric.min(), metric.max())
    fig.colorbar(mappable, ax=ax, label=analysis.metric)
    ax.set_title(
        f"Parallel coordinates: hyperparameters vs {analysis.metric} (one line per job)",
        fontsize=10,
    )
    return fig


def _scalar_mappable(cmap, lo: float, hi: float):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    return ScalarMappable(norm=Normalize(lo, hi if hi > lo else lo + 1e-9), cmap=cmap)


def importance_chart(analysis: Analysis) -> Figure | None:
    if not analysis.importance:
        return None
    items = sorted(analysis.importance.items(), key=lambda kv: kv[1])
    fig = Figure(figsize=(8.5, 1.4 + 0.45 * len(items)), layout="constrained")
    ax = fig.subplots()
    colors = ["0.6" if k == "seed / residual" else "C0" for k, _ in items]
    ax.barh([_short(k, 30) for k, _ in items], [v for _, v in items], color=colors)
    for i, (_, v) in enumerate(items):
        ax.text(v + 0.01, i, f"{v:.0%}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    if analysis.importance_method == "eta^2":
        ax.set_xlabel(
            f"share of the variance of {analysis.metric} (eta^2, one-way ANOVA main effect)"
        )
        ax.set_title("Hyperparameter importance, eta^2 (grey: seed-to-seed variance)", fontsize=10)
    else:
        ax.set_xlabel(f"share of importance for {analysis.metric}")
        ax.set_title(f"Hyperparameter importance ({analysis.importance_method})", fontsize=10)
    return fig


def accuracy_vs_time(analysis: Analysis, metric: str = "test/acc") -> Figure | None:
    groups = [g for g in analysis.groups if g.finished]
    if not any(g.stats.get(metric) and g.stats[metric].n for g in groups):
        metric = analysis.metric
    points = [(j.metric("train_time_s"), j.metric(metric)) for g in groups for j in g.finished]
    points = [p for p in points if not any(math.isnan(v) for v in p)]
    if not points:
        return None
    fig = Figure(figsize=(9.5, 5.0), layout="constrained")
    ax = fig.subplots()
    for g, color in zip(groups, _colors(len(groups)), strict=True):
        t = [j.metric("train_time_s") for j in g.finished]
        m = [j.metric(metric) for j in g.finished]
        ax.scatter(t, m, s=18, color=color, alpha=0.6)
        st, sm = g.stats["train_time_s"], g.stats[metric]
        ax.errorbar(
            st.mean,
            sm.mean,
            xerr=np.nan_to_num(st.std),
            yerr=np.nan_to_num(sm.std),
            fmt="s",
            color=color,
            ms=7,
            capsize=3,
            label=_short(g.label, 40),
        )
    times = [p[0] for p in points]
    if min(times) > 0 and max(times) / min(times) > 10:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^1-style minor labels overlap
    ax.set_xlabel("train time per job (s)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs train time (squares: group mean +- std; dots: jobs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def per_class_heatmap(analysis: Analysis) -> tuple[Figure | None, str]:
    """Groups x classes of mean per-class test F1; (None, why) when the jobs wrote no per-class metrics."""
    groups = [g for g in analysis.groups if any(j.per_class_f1 for j in g.finished)]
    if not groups:
        return None, (
            "no per-class metrics found (artifacts/per_class*.csv|json in the job folders): "
            "the per-class heatmap is skipped"
        )
    classes: list[str] = []
    for g in groups:
        for j in g.finished:
            classes += [c for c in (j.per_class_f1 or {}) if c not in classes]
    grid = np.full((len(groups), len(classes)), np.nan)
    for r, g in enumerate(groups):
        for c, name in enumerate(classes):
            vals = [
                j.per_class_f1[name]
                for j in g.finished
                if j.per_class_f1 and name in j.per_class_f1
            ]
            if vals:
                grid[r, c] = float(np.mean(vals))
    fig = Figure(
        figsize=(1.0 + 0.8 * len(classes) + 3.5, 1.5 + 0.42 * len(groups)), layout="constrained"
    )
    ax = fig.subplots()
    im = ax.imshow(grid, cmap="RdYlGn", aspect="auto", vmin=np.nanmin(grid), vmax=np.nanmax(grid))
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(groups)), [_short(g.label, 45) for g in groups], fontsize=8)
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            if not np.isnan(grid[r, c]):
                ax.text(c, r, f"{grid[r, c]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="test F1 (mean over seeds)")
    ax.set_title("Per-class test F1 by group")
    return fig, ""
