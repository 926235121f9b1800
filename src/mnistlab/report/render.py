"""Write summary.csv, report.md (+ PNG files) and a self-contained report.html for a sweep."""

from __future__ import annotations

import base64
import csv
import html
import math
from datetime import datetime
from pathlib import Path

from matplotlib.figure import Figure

from mnistlab.artifacts.figures import save_figure
from mnistlab.report import figures
from mnistlab.report.notebook import RECORD, record_study
from mnistlab.report.stats import (
    METRICS,
    Analysis,
    Comparison,
    Stat,
    compare_to_best,
    comparison_sentence,
    higher_is_better,
    short_label,
)
from mnistlab.report.study import Study, answer_objectives, build_study, objective

FIGURE_DIR = "report_files"
IMPORTANCE_CAPTIONS = {
    "eta^2": "Hyperparameter importance: eta² (one-way ANOVA main effect) = share of the variance of {metric} "
    "across finished jobs explained by each swept hyperparameter alone; grey = variance between seeds of one "
    "configuration. Main effects of a full grid, their interactions and seed noise add to 100%.",
    "random-forest permutation importance": "Hyperparameter importance: permutation importance of a random "
    "forest fitted to {metric} over the finished jobs (values sampled per job, e.g. by Optuna), "
    "normalized to sum to 100%.",
}
PERCENT = ("acc", "acc_best", "f1_macro", "precision_macro", "recall_macro")


def _is_percent(metric: str) -> bool:
    return metric.split("/")[-1] in PERCENT


def fmt_stat(stat: Stat | None, metric: str) -> str:
    """``91.23 ± 0.40`` (accuracies in %), ``—`` without values; no ± for a single seed."""
    if stat is None or stat.n == 0:
        return "—"
    scale, digits = (100.0, 2) if _is_percent(metric) else (1.0, 4 if "loss" in metric else 1)
    if metric == "params":
        return f"{stat.mean:,.0f}"
    text = f"{stat.mean * scale:.{digits}f}"
    if not math.isnan(stat.std):
        text += f" ± {stat.std * scale:.{digits}f}"
    return text


def one_line(text: str | None, limit: int | None = None) -> str:
    """An error message on one line (Hydra wraps constructor errors over several), shortened to ``limit``."""
    flat = " ".join((text or "").split())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 3] + "..."


def write_summary_csv(analysis: Analysis, path: Path) -> None:
    """One row per job: number, status, group, seed, each swept key, final metrics, error, folder."""
    labels = {id(j): g.label for g in analysis.groups for j in g.jobs}
    metric_cols = list(
        dict.fromkeys(
            (analysis.metric, *METRICS, "test/precision_macro", "test/recall_macro", "best_epoch")
        )
    )
    fields = [
        "job",
        "status",
        "group",
        "seed",
        *analysis.varying,
        *analysis.settings,
        *metric_cols,
        *COMPARISON_COLUMNS,
        "error",
        "overrides",
        "dir",
    ]
    versus = {id(c.other): c for c in compare_to_best(analysis)}
    group_of = {id(j): g for g in analysis.groups for j in g.jobs}
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for job in analysis.jobs:
            group = group_of.get(id(job))
            comparison = versus.get(id(group)) if group is not None else None
            row = {
                "job": job.num,
                "status": job.status,
                "group": labels.get(id(job), ""),
                "seed": job.seed or "",
                **{k: job.overrides.get(k, "") for k in analysis.varying},
                **{k: _csv_value(job.setting(k)) for k in analysis.settings},
                **_comparison_cells(comparison),
                **{
                    m: job.metrics.get(m, "") if job.metrics.get(m) is not None else ""
                    for m in metric_cols
                },
                "error": one_line(job.error) if not job.ok else "",
                "overrides": " ".join(f"{k}={v}" for k, v in job.overrides.items()),
                "dir": job.path.name,
            }
            writer.writerow(row)


COMPARISON_COLUMNS = (
    "vs_best_diff",
    "vs_best_ci95_low",
    "vs_best_ci95_high",
    "vs_best_welch_t",
    "vs_best_welch_df",
    "vs_best_p",
    "vs_best_verdict",
)


def _csv_value(value: object) -> str:
    return "" if value is None else str(value)


def _comparison_cells(c: Comparison | None) -> dict[str, object]:
    """The job's group against the best group (empty for the best group itself)."""
    if c is None:
        return {}
    verdict = "untested" if not c.testable else "seed noise" if c.within_noise else "worse"
    return dict(
        zip(
            COMPARISON_COLUMNS,
            (c.diff, c.ci[0], c.ci[1], c.t, c.df, c.p, verdict),
            strict=True,
        )
    )


def comparison_rows(comparisons: list[Comparison]) -> tuple[list[str], list[list[str]]]:
    """Table of the best group against each other one (difference, 95% CI, Welch's t, p)."""
    header = ["best", "other", "difference", "95% CI", "Welch's t", "df", "p", "seeds", "verdict"]
    rows = []
    for c in comparisons:
        scale = 100.0 if _is_percent(c.metric) else 1.0
        unit = " pts" if scale == 100 else ""

        def fmt(v: float, scale: float = scale) -> str:
            return f"{v * scale:.2f}" if scale == 100 else f"{v:.4g}"

        tested = c.testable
        rows.append(
            [
                short_label(c.best),
                short_label(c.other),
                fmt(c.diff) + unit,
                f"[{fmt(c.ci[0])}, {fmt(c.ci[1])}]" if tested else "—",
                f"{c.t:.2f}" if tested else "—",
                f"{c.df:.1f}" if tested else "—",
                f"{c.p:.2g}" if tested else "—",
                f"{c.n_best} vs {c.n_other}",
                "untested" if not tested else "inside seed noise" if c.within_noise else "real",
            ]
        )
    return header, rows


def _table_columns(analysis: Analysis) -> list[str]:
    cols = list(
        dict.fromkeys(
            (
                analysis.metric,
                "val/acc_best",
                "test/acc",
                "test/f1_macro",
                "test/loss",
                "train_time_s",
                "params",
            )
        )
    )
    return [c for c in cols if any(g.stats.get(c) and g.stats[c].n for g in analysis.groups)]


def group_table(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ranked group table (rank, configuration, n seeds, metrics, failures)."""
    cols = _table_columns(analysis)
    mixed = len({objective(g) for g in analysis.groups}) > 1
    header = [
        "rank",
        "configuration",
        "n seeds",
        *analysis.settings,
        *[
            f"{c} (%)"
            if _is_percent(c)
            else f"{c} (own objective: not comparable)"
            if mixed and "loss" in c
            else c
            for c in cols
        ],
        "failed",
    ]
    rows = []
    for g in analysis.groups:
        pruned = sum(j.status == "pruned" for j in g.jobs)
        failed = f"{len(g.failed) - pruned}" if len(g.failed) > pruned else ""
        failed += f" {pruned} pruned" if pruned else ""
        diverged = sum(j.status == "diverged" for j in g.jobs)
        rows.append(
            [
                str(g.rank) if g.rank else "—",
                g.label,
                str(len(g.finished)),
                *[analysis.setting(g, k) for k in analysis.settings],
                *[fmt_stat(g.stats.get(c), c) for c in cols],
                failed + (f" ({diverged} diverged)" if diverged else ""),
            ]
        )
    return header, rows


def failure_rows(analysis: Analysis) -> list[list[str]]:
    return [
        [
            str(j.num),
            j.status,
            " ".join(f"{k}={v}" for k, v in j.overrides.items()),
            one_line(j.error, 300),
            j.path.name,
        ]
        for j in analysis.jobs
        if not j.ok and j.status != "pruned"
    ]


def make_figures(analysis: Analysis) -> tuple[list[tuple[str, str, Figure]], list[str]]:
    """``(file stem, caption, figure)`` for every chart that has data, and notes for those skipped."""
    metric = analysis.metric
    made: list[tuple[str, str, Figure]] = []
    notes: list[str] = []
    # losses of different objectives (module.loss=ce vs mse) are never drawn on one axis
    mixed = len({objective(g) for g in analysis.groups}) > 1
    val_keys = ("val/acc",) if mixed else ("val/acc", "val/loss")
    gap_keys = ("acc",) if mixed else ("acc", "loss")
    if mixed:
        notes.append(
            "The groups train different objectives (module.loss): their losses are not on one "
            "scale, so loss curves are drawn per objective (val_loss_by_objective) and the "
            "curves and gap below compare accuracy only."
        )
    specs = [
        (
            "metric_bars",
            f"Mean ± std over seeds of {metric} and test/acc per group; dots are single seeds.",
            lambda: figures.metric_bars(analysis),
        ),
        (
            "val_curves",
            "Validation curves per group: mean over seeds, band = ± std.",
            lambda: figures.curve_overlay(
                analysis, val_keys, ("val/acc per epoch", "val/loss per epoch")
            ),
        ),
        (
            "generalization_gap",
            "Generalization gap per epoch (train minus validation; train/acc is the running "
            "average over each epoch, with dropout and augmentation on). Above 0 = better on the training data than on validation (over-fitting).",
            lambda: figures.curve_overlay(
                analysis,
                gap_keys,
                ("train/acc - val/acc", "val/loss - train/loss"),
                gap=True,
            ),
        ),
        (
            "parallel_coordinates",
            f"Parallel coordinates: each line is a job, coloured by {metric}.",
            lambda: figures.parallel_coordinates(analysis),
        ),
        (
            "importance",
            IMPORTANCE_CAPTIONS.get(analysis.importance_method, "").format(metric=metric),
            lambda: figures.importance_chart(analysis),
        ),
        (
            "accuracy_vs_time",
            "Test accuracy vs train time per job and group.",
            lambda: figures.accuracy_vs_time(analysis),
        ),
    ]
    if mixed:
        specs.insert(
            2,
            (
                "val_loss_by_objective",
                "val/acc of every group on one axis; each objective's val/loss in its own panel.",
                lambda: next(
                    f
                    for stem, _, f in answer_objectives(analysis, {}).figures
                    if stem == "study_objectives"
                ),
            ),
        )
    for stem, caption, build in specs:
        fig = build()
        if fig is None:
            notes.append(
                f"{stem}: not drawn (needs finished jobs with the data it plots"
                + (
                    ", and at least one swept hyperparameter)"
                    if stem in ("parallel_coordinates", "importance")
                    else ")"
                )
            )
        else:
            made.append((stem, caption, fig))
    heatmap, why = figures.per_class_heatmap(analysis)
    if heatmap is None:
        notes.append(f"per_class_f1: {why}")
    else:
        made.append(("per_class_f1", "Per-class test F1 (mean over seeds) per group.", heatmap))
    return made, notes


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc])


def _html_table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2}tr:nth-child(even) td{background:#fafafa}
td:nth-child(n+3){font-variant-numeric:tabular-nums}
.failed td{background:#fde8e8 !important}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;max-width:900px}
.note{color:#8a5a00}code{background:#f4f4f4;padding:0 3px}
"""


TEST_NAME = (
    "Welch's t-test (unequal variances, two-sided, scipy.stats.ttest_ind(equal_var=False)); "
    "95% CI of the difference from the t distribution with Welch–Satterthwaite degrees of "
    "freedom. p >= 0.05 or a CI covering 0 is called inside the seed noise."
)


def _study_md(study: Study, images: list[tuple[str, str, bytes]]) -> list[str]:
    """The study's question, answer sentences, figures and tables (first section of report.md)."""
    md = [f"## Study: {study.name}", ""]
    if study.question:
        md += [f"**Question.** {study.question}", ""]
    if study.answer.sentences:
        md += ["**Answer (from the data).**", "", *[f"- {s}" for s in study.answer.sentences], ""]
    for stem, caption, _ in images:
        md += [f"![{stem}]({FIGURE_DIR}/{stem}.png)", "", f"_{caption}_", ""]
    for title, (header, rows) in study.answer.tables:
        md += [f"**{title}**", "", _md_table(header, rows), ""]
    md += [f"- _{n}_" for n in study.answer.notes]
    return md + ([""] if study.answer.notes else [])


def _study_html(study: Study, images: list[tuple[str, str, bytes]]) -> list[str]:
    body = [f'<section id="study"><h2>Study: {html.escape(study.name)}</h2>']
    if study.question:
        body.append(f"<p><b>Question.</b> {html.escape(study.question)}</p>")
    if study.answer.sentences:
        body.append(
            '<p><b>Answer (from the data).</b></p><ul class="answer">'
            + "".join(f"<li>{html.escape(s)}</li>" for s in study.answer.sentences)
            + "</ul>"
        )
    body += [_html_figure(stem, caption, data) for stem, caption, data in images]
    for title, (header, rows) in study.answer.tables:
        body += [f"<p><b>{html.escape(title)}</b></p>", _html_table(header, rows)]
    body += [f'<p class="note">{html.escape(n)}</p>' for n in study.answer.notes]
    return [*body, "</section>"]


def _comparison_md(
    analysis: Analysis, sentences: list[str], header: list[str], rows: list[list[str]]
) -> list[str]:
    if not rows:
        return []
    return [
        f"## Best configuration vs each other ({analysis.metric})",
        "",
        *[f"- {s}" for s in sentences],
        "",
        _md_table(header, rows),
        "",
        f"_{TEST_NAME}_",
        "",
    ]


def _comparison_html(
    analysis: Analysis, sentences: list[str], header: list[str], rows: list[list[str]]
) -> list[str]:
    if not rows:
        return []
    return [
        f"<h2>Best configuration vs each other ({html.escape(analysis.metric)})</h2>",
        "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>",
        _html_table(header, rows),
        f'<p class="note">{html.escape(TEST_NAME)}</p>',
    ]


def _html_figure(stem: str, caption: str, data: bytes) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'<figure id="{stem}"><img alt="{stem}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render(analysis: Analysis, sweep_dir: Path, out_dir: Path) -> dict[str, Path]:
    """Write every report file into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / FIGURE_DIR
    fig_dir.mkdir(exist_ok=True)
    paths = {
        "summary": out_dir / "summary.csv",
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
    }
    write_summary_csv(analysis, paths["summary"])
    made, notes = make_figures(analysis)
    images = []
    for stem, caption, fig in made:
        images.append((stem, caption, save_figure(fig, fig_dir / f"{stem}.png").read_bytes()))

    study = build_study(analysis)
    study_images = []
    if study is not None:
        for stem, caption, fig in study.answer.figures:
            study_images.append(
                (stem, caption, save_figure(fig, fig_dir / f"{stem}.png").read_bytes())
            )
        files = [
            {"stem": s, "caption": c, "file": f"{FIGURE_DIR}/{s}.png"} for s, c, _ in study_images
        ]
        paths["study"] = record_study(out_dir / RECORD, study.name, study.question,
                                      study.answer.sentences, files, analysis)  # fmt: skip
    comparisons = compare_to_best(analysis)
    compare_header, compare_rows = comparison_rows(comparisons)
    sentences = [comparison_sentence(c) for c in comparisons]

    n_ok = sum(j.ok for j in analysis.jobs)
    n_pruned = sum(j.status == "pruned" for j in analysis.jobs)  # stopped by a search's pruner
    n_failed = len(analysis.jobs) - n_ok - n_pruned
    direction = "higher" if higher_is_better(analysis.metric) else "lower"
    title = f"Sweep report: {sweep_dir}"
    facts = [
        f"{len(analysis.jobs)} job{'s' if len(analysis.jobs) != 1 else ''}: {n_ok} finished, "
        f"{n_failed} failed or missing"
        + (f", {n_pruned} pruned" if n_pruned else "")
        + f"; {len(analysis.groups)} configuration{'s' if len(analysis.groups) != 1 else ''}.",
        f"Ranked by mean {analysis.metric} over seeds ({direction} is better). "
        "± is the sample standard deviation (ddof=1) over seeds; n seeds counts finished jobs.",
        "Swept: " + (", ".join(analysis.varying) or "only seeds") + ".",
    ]
    if analysis.common:
        facts.append(
            "Common to every job: " + " ".join(f"{k}={v}" for k, v in analysis.common.items()) + "."
        )
    header, rows = group_table(analysis)
    failures = failure_rows(analysis)
    fail_header = ["job", "status", "overrides", "error", "folder"]
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    from mnistlab.report.search import section as search_section

    search = search_section(sweep_dir, out_dir)  # an Optuna search: study, best trial, its plots

    md = [
        f"# {title}",
        "",
        f"_generated {stamp} by `python -m mnistlab.report`_",
        "",
        *[f"- {f}" for f in facts],
        "",
        *(search.markdown if search else []),
        *(_study_md(study, study_images) if study else []),
        *_comparison_md(analysis, sentences, compare_header, compare_rows),
        "## Ranking",
        "",
        _md_table(header, rows),
        "",
    ]
    if failures:
        md += ["## Failed jobs", "", _md_table(fail_header, failures), ""]
    md += ["## Figures", ""]
    for stem, caption, _ in images:
        md += [f"![{stem}]({FIGURE_DIR}/{stem}.png)", "", f"_{caption}_", ""]
    md += [f"- {n}" for n in notes]
    md += ["", "Per-job rows: `summary.csv`."]
    paths["markdown"].write_text("\n".join(md) + "\n")

    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p><small>generated {stamp}</small></p>",
        "<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in facts) + "</ul>",
        *(search.html if search else []),
        *(_study_html(study, study_images) if study else []),
        *_comparison_html(analysis, sentences, compare_header, compare_rows),
        "<h2>Ranking</h2>",
        _html_table(header, rows),
    ]
    if failures:
        body += ["<h2>Failed jobs</h2>", _html_table(fail_header, failures, "failed")]
    body.append("<h2>Figures</h2>")
    body += [_html_figure(stem, caption, data) for stem, caption, data in images]
    body += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    body.append("<p>Per-job rows: <code>summary.csv</code> next to this file.</p>")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    paths["html"].write_text(page, encoding="utf-8")
    return paths
