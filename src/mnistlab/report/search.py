"""The search section of a sweep report: read from the Optuna study itself, not from the job folders.

Only sweeps run by the search sweeper have one (they leave ``search.yaml`` in the sweep
folder). It shows the trial counts by state, the best trial (or the Pareto front) with
its config and the command that re-runs it, the optimization history, the per-epoch
values the pruner saw, fANOVA importances and slice/contour plots of the two most
important parameters; ``search.json`` keeps the same facts for scripts.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib import colormaps
from matplotlib.figure import Figure

log = logging.getLogger("mnistlab.report")

FIGURE_DIR = "report_files"
STATE_COLORS = {"COMPLETE": "tab:blue", "PRUNED": "tab:orange", "FAIL": "tab:red"}


@dataclass
class Section:
    """Markdown lines and HTML fragments of the search section, to put above the ranking."""

    markdown: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)


def _load_study(record: dict[str, Any]) -> Any:
    import optuna

    from mnistlab.search.study import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(
        study_name=record["study_name"], storage=make_storage(str(record["storage"]))
    )


def rerun_command(program: str, overrides: list[str]) -> str:
    """The shell command that runs one trial again as a single run."""
    program = program or "train.py"
    head = f"python {shlex.quote(program)}" if program.endswith(".py") else shlex.quote(program)
    return " ".join([head, *(shlex.quote(o) for o in overrides)])


def _job_dir(sweep_dir: Path, number: int) -> Path | None:
    """The job folder of trial ``number`` (the sweeper runs trial n as job n)."""
    for path in sorted(sweep_dir.glob(f"{number}_*")) + [sweep_dir / str(number)]:
        if (path / ".hydra").is_dir() and path.name.split("_")[0] == str(number):
            return path
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _state_counts(trials: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def importances(study: Any, n_objectives: int) -> tuple[list[dict[str, float]], str]:
    """fANOVA importance of each parameter per objective (empty when there are too few trials)."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 3 or not complete[0].params:
        return [], "importances: need at least 3 complete trials"
    result = []
    try:
        for i in range(n_objectives):
            target = (lambda t, i=i: t.values[i]) if n_objectives > 1 else None
            result.append(
                get_param_importances(
                    study, evaluator=FanovaImportanceEvaluator(seed=0), target=target
                )
            )
    except (RuntimeError, ValueError, ZeroDivisionError) as err:
        return [], f"importances: not computed ({err})"
    return result, ""


def _axis(trials: list[Any], name: str) -> tuple[np.ndarray, list[str] | None, bool]:
    """Values of parameter ``name`` as numbers, category labels (or None), and log scale."""
    values = [t.params[name] for t in trials]
    dist = trials[0].distributions[name]
    if type(dist).__name__ == "CategoricalDistribution":
        labels = [str(c) for c in dist.choices]
        return np.asarray([labels.index(str(v)) for v in values], float), labels, False
    return np.asarray(values, float), None, bool(getattr(dist, "log", False))


def history_figure(trials: list[Any], direction: str, name: str) -> Figure | None:
    """Objective per trial (pruned: their last reported value) and the best so far."""
    scored = [t for t in trials if t.state.name == "COMPLETE"]
    if not scored:
        return None
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.subplots()
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        pts = [
            (t.number, t.value if state == "COMPLETE" else t.intermediate_values[t.last_step])
            for t in trials
            if t.state.name == state and (state == "COMPLETE" or t.last_step is not None)
        ]
        if pts:
            x, y = zip(*pts, strict=True)
            label = name if state == "COMPLETE" else "pruned (last reported value)"
            ax.scatter(x, y, marker=marker, color=STATE_COLORS[state], label=label, zorder=3)
    best = np.maximum.accumulate if direction == "maximize" else np.minimum.accumulate
    x = [t.number for t in scored]
    ax.step(x, best(np.asarray([t.value for t in scored])), where="post", color="black", lw=1.2)
    ax.plot([], [], color="black", lw=1.2, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(name)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"Optimization history ({direction})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def intermediate_figure(trials: list[Any], monitor: str) -> Figure | None:
    """What each trial reported per epoch; pruned trials end early (orange)."""
    curves = [t for t in trials if len(t.intermediate_values) > 0]
    if not curves:
        return None
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.subplots()
    for t in curves:
        steps = sorted(t.intermediate_values)
        color = STATE_COLORS.get(t.state.name, "grey")
        ax.plot(
            steps, [t.intermediate_values[s] for s in steps], color=color, alpha=0.6, marker="."
        )
    for state, color in STATE_COLORS.items():
        if any(t.state.name == state for t in curves):
            ax.plot([], [], color=color, label=state.lower())
    ax.set_xlabel("epoch")
    ax.set_ylabel(monitor)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"{monitor} reported per epoch by each trial (what the pruner compares)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def importance_figure(result: list[dict[str, float]], names: list[str]) -> Figure | None:
    if not result:
        return None
    params = list(result[0])[::-1]
    fig = Figure(figsize=(8.5, 1.4 + 0.45 * len(params) * len(result)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / len(result)
    for i, (imp, name) in enumerate(zip(result, names, strict=True)):
        y = np.arange(len(params)) + (i - (len(result) - 1) / 2) * height
        ax.barh(y, [imp.get(p, 0.0) for p in params], height=height * 0.9, label=name)
    ax.set_yticks(np.arange(len(params)), params, fontsize=8)
    ax.set_xlabel("share of the objective's variance (fANOVA, sums to 1)")
    ax.set_title("Parameter importance (Optuna fANOVA over complete trials)", fontsize=10)
    if len(result) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def slice_figure(trials: list[Any], params: list[str], name: str) -> Figure | None:
    """Objective against each of the top parameters (colour: trial number)."""
    scored = [t for t in trials if t.state.name == "COMPLETE"]
    if not scored or not params:
        return None
    fig = Figure(figsize=(5.2 * len(params) + 1, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(params)))
    y = np.asarray([t.value for t in scored])
    order = np.asarray([t.number for t in scored], float)
    for ax, param in zip(axes, params, strict=True):
        x, labels, log_scale = _axis(scored, param)
        points = ax.scatter(x, y, c=order, cmap=colormaps["viridis"], s=28, zorder=3)
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=20)
        if log_scale:
            ax.set_xscale("log")
        ax.set_xlabel(param)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(name)
    fig.colorbar(points, ax=list(axes), label="trial")
    fig.suptitle("Slice: the objective against the two most important parameters", fontsize=10)
    return fig


def contour_figure(trials: list[Any], params: list[str], name: str) -> Figure | None:
    """The objective over the plane of the top two parameters (filled where trials are dense)."""
    scored = [t for t in trials if t.state.name == "COMPLETE"]
    if len(params) < 2 or len(scored) < 3:
        return None
    (x, xl, xlog), (y, yl, ylog) = (_axis(scored, p) for p in params[:2])
    z = np.asarray([t.value for t in scored])
    fig = Figure(figsize=(7.5, 5.6), layout="constrained")
    ax = fig.subplots()
    fx, fy = (np.log10(x) if xlog else x), (np.log10(y) if ylog else y)
    levels = None
    if len(scored) >= 4 and np.ptp(fx) > 0 and np.ptp(fy) > 0 and np.ptp(z) > 0:
        try:
            levels = ax.tricontourf(fx, fy, z, levels=12, cmap="viridis", alpha=0.55)
        except (ValueError, RuntimeError):  # collinear points: no triangulation
            levels = None
    points = ax.scatter(fx, fy, c=z, cmap="viridis", edgecolors="black", s=40, zorder=3)
    fig.colorbar(levels if levels is not None else points, ax=ax, label=name)
    for axis, labels, logged, param in (
        (ax.xaxis, xl, xlog, params[0]),
        (ax.yaxis, yl, ylog, params[1]),
    ):
        if labels is not None:
            axis.set_ticks(range(len(labels)), labels, fontsize=8)
        axis.set_label_text(f"log10 {param}" if logged else param)
    ax.set_title("Contour of the objective over the two most important parameters", fontsize=10)
    return fig


def pareto_figure(study: Any, names: list[str]) -> Figure | None:
    """First two objectives of every complete trial, the Pareto-optimal ones highlighted."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(names) < 2 or not complete:
        return None
    front = {t.number for t in study.best_trials}
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    rest = [t for t in complete if t.number not in front]
    best = sorted((t for t in complete if t.number in front), key=lambda t: t.values[0])
    if rest:
        ax.scatter(*zip(*[t.values[:2] for t in rest], strict=True), color="grey", label="trials")
    ax.plot(
        *zip(*[t.values[:2] for t in best], strict=True),
        marker="o",
        color="tab:red",
        label="Pareto front",
    )
    for t in best:
        ax.annotate(
            str(t.number), t.values[:2], fontsize=8, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Pareto front (numbers: trials)")
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _trial_rows(
    trials: list[Any], names: list[str], sweep_dir: Path, program: str
) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        overrides = list(t.user_attrs.get("mnistlab.overrides", []))
        job = _job_dir(sweep_dir, t.number)
        if job is not None and (job / ".hydra" / "overrides.yaml").is_file():
            overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or overrides
        rows.append(
            {
                "trial": t.number,
                "values": dict(zip(names, t.values, strict=True)),
                "params": t.params,
                "job_dir": str(job) if job else None,
                "command": rerun_command(program, overrides),
            }
        )
    return rows


def summarize(sweep_dir: Path, record: dict[str, Any], study: Any) -> dict[str, Any]:
    """The facts of the section (written as search.json): counts, best trial(s), commands."""
    trials = study.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in study.directions]
    names = record.get("objectives") or (
        [record.get("metric") or "objective"]
        if len(directions) == 1
        else [f"objective {i}" for i in range(len(directions))]
    )
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = (
        ([study.best_trial] if complete else [])
        if len(directions) == 1
        else list(study.best_trials)
    )
    return {
        "study_name": record["study_name"],
        "storage": record["storage"],
        "directions": directions,
        "objectives": names,
        "n_trials_target": record.get("n_trials"),
        "n_trials": len(trials),
        "states": _state_counts(trials),
        "best": _trial_rows(best, names, sweep_dir, str(record.get("program", "train.py"))),
    }


def section(sweep_dir: Path, out_dir: Path) -> Section | None:
    """The search section of ``sweep_dir``'s report, or None when the sweep was not a search.

    Figures go to ``<out_dir>/report_files/search_*.png`` and into the HTML; a study that
    cannot be read gives a one-line note instead of failing the whole report.
    """
    from mnistlab.search.study import read_record

    record = read_record(sweep_dir)
    if record is None:
        return None
    try:
        study = _load_study(record)
    except Exception as err:  # a storage gone or unreachable: the rest of the report stands
        note = f"The Optuna study {record.get('study_name')} in {record.get('storage')} could not be read: {err}"
        return Section(
            ["## Search", "", note, ""],
            ["<h2>Search</h2>", f'<p class="note">{html.escape(note)}</p>'],
        )
    facts = summarize(sweep_dir, record, study)
    (out_dir / "search.json").write_text(json.dumps(facts, indent=2, default=str) + "\n")
    return _render(facts, record, study, out_dir)


def _describe(cfg: dict[str, Any] | None, default: str) -> str:
    cfg = dict(cfg or {})
    name = cfg.pop("name", default)
    options = ", ".join(f"{k}={v}" for k, v in cfg.items() if v is not None)
    return f"{name} ({options})" if options else str(name)


def _render(facts: dict[str, Any], record: dict[str, Any], study: Any, out_dir: Path) -> Section:
    trials = study.get_trials(deepcopy=False)
    names, directions = facts["objectives"], facts["directions"]
    states = facts["states"]
    storage = str(record["storage"])
    counts = ", ".join(
        f"{states.get(s, 0)} {label}"
        for s, label in (
            ("COMPLETE", "complete"),
            ("PRUNED", "pruned"),
            ("FAIL", "failed"),
            ("RUNNING", "running"),
        )
        if states.get(s, 0) or s in ("COMPLETE", "PRUNED")
    )
    goal = " and ".join(f"{d} {n}" for d, n in zip(directions, names, strict=True))
    lines = [
        f"Optuna study '{facts['study_name']}': {facts['n_trials']} of {facts['n_trials_target']} trials "
        f"({counts}); goal: {goal}.",
        f"Sampler {_describe(record.get('sampler'), 'tpe')}; pruner {_describe(record.get('pruner'), 'none')}, "
        f"on {record.get('monitor', 'val/acc')} per epoch.",
        f"Storage: {storage}. Re-running the sweep's command continues the study up to n_trials; "
        f"browse it with: optuna-dashboard {storage}",
    ]
    md = ["## Search", "", *[f"- {line}" for line in lines], ""]
    body = [
        "<h2>Search</h2>",
        "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>",
    ]

    best = facts["best"]
    title = "Best trial" if len(directions) == 1 else "Pareto front"
    md += [f"### {title}", ""]
    body.append(f"<h3>{title}</h3>")
    if not best:
        md += ["No complete trial yet.", ""]
        body.append("<p>No complete trial yet.</p>")
    for row in best:
        values = ", ".join(f"{k} = {_fmt(v)}" for k, v in row["values"].items())
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in row["params"].items())
        head = f"Trial {row['trial']}: {values}; {params}."
        md += [head, "", "```", row["command"], "```", ""]
        body += [
            f'<p class="best-trial" data-trial="{row["trial"]}"><b>{html.escape(head)}</b></p>',
            "<p>Re-run it as a single run:</p>"
            f'<pre style="white-space:pre-wrap"><code>{html.escape(row["command"])}</code></pre>',
        ]
        config = Path(row["job_dir"]) / ".hydra" / "config.yaml" if row["job_dir"] else None
        if config is not None and config.is_file():
            md += [f"Full config: `{config}`", ""]
            body.append(
                f"<details><summary>full config of trial {row['trial']} ({html.escape(str(config))})</summary>"
                f"<pre>{html.escape(config.read_text())}</pre></details>"
            )

    result, note = importances(study, len(directions))
    top = list(result[0])[:2] if result else []
    if not top and trials and trials[0].params:
        top = list(trials[0].params)[:2]
    figures: list[tuple[str, str, Figure | None]] = []
    if len(directions) == 1:
        figures.append(
            (
                "search_history",
                f"Optimization history: {names[0]} of each trial (orange x: pruned trials at their "
                "last reported value) and the best so far.",
                history_figure(trials, directions[0], names[0]),
            )
        )
    else:
        figures.append(
            (
                "search_pareto",
                "Pareto front of the first two objectives.",
                pareto_figure(study, names),
            )
        )
    monitor = str(record.get("monitor", "val/acc"))
    figures += [
        (
            "search_intermediate",
            f"{monitor} per epoch of every trial: blue complete, orange pruned, red failed.",
            intermediate_figure(trials, monitor),
        ),
        (
            "search_importance",
            "Parameter importance by Optuna's fANOVA evaluator (a random forest on the complete "
            "trials; the share of the objective's variance each parameter explains).",
            importance_figure(result, names),
        ),
    ]
    if len(directions) == 1:
        figures += [
            (
                "search_slice",
                f"{names[0]} against the two most important parameters (colour: trial number).",
                slice_figure(trials, top, names[0]),
            ),
            (
                "search_contour",
                f"{names[0]} over the two most important parameters (filled: interpolation between trials).",
                contour_figure(trials, top, names[0]),
            ),
        ]
    fig_dir = out_dir / FIGURE_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    notes = [note] if note else []
    for stem, caption, fig in figures:
        if fig is None:
            notes.append(f"{stem}: not drawn (needs complete trials with the data it plots)")
            continue
        data = _png(fig)
        (fig_dir / f"{stem}.png").write_bytes(data)
        md += [f"![{stem}]({FIGURE_DIR}/{stem}.png)", "", f"_{caption}_", ""]
        b64 = base64.b64encode(data).decode("ascii")
        body.append(
            f'<figure id="{stem}"><img alt="{stem}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    md += [f"- {n}" for n in notes] + ([""] if notes else [])
    body += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    return Section(md, body)
