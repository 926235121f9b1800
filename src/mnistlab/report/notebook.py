"""The lab notebook: every study of a folder of sweeps on one page (``notebook.html``, ``.md``).

``make studies`` runs each study into ``<dir>/<study>/``; every sweep's report writes a
``study.json`` beside its ``report.html`` (question, answer sentences, figures, how it was
run). ``python -m mnistlab.report --notebook <dir>`` collects them: a contents list, then per
study its question, its answer, its key figure and a link to the full report.
``notebook.html`` is self-contained (images as data URIs, inline CSS, no script).
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mnistlab.files import write_json
from mnistlab.report.stats import Analysis

RECORD = "study.json"
#: the README's order of the studies (simple to complex); others follow alphabetically
ORDER = (
    "baseline", "depth", "width", "activation", "skip", "optimizers", "optimizers_tuned", "lr",
    "schedules", "batch_size", "regularization", "init", "loss", "vanishing_gradients",
    "dead_neurons", "mlp_vs_cnn", "softmax_and_dbsnet", "transfer",
)  # fmt: skip


def record_study(
    path: Path, name: str, question: str, sentences: list[str], figures: list[dict[str, str]],
    analysis: Analysis,
) -> Path:  # fmt: skip
    """Write a sweep's ``study.json``: what the notebook shows of it (figure files relative to
    it) and how the sweep was run (jobs, data sets, epochs, seeds, batch limits)."""
    finished = [j for j in analysis.jobs if j.ok]
    epochs = [
        int(j.metrics["epochs"]) for j in finished if isinstance(j.metrics.get("epochs"), int)
    ]
    record = {
        "study": name,
        "question": question,
        "answer": sentences,
        "figures": figures,
        "jobs": len(analysis.jobs),
        "finished": len(finished),
        "data": sorted({str(j.metrics["data"]) for j in finished if j.metrics.get("data")}),
        "epochs": max(epochs, default=None),
        "seeds": len({j.seed for j in finished if j.seed is not None}) or None,
        "limits": {k: v for k, v in analysis.common.items() if k.startswith("trainer.limit_")},
    }
    return write_json(path, record)


@dataclass
class Entry:
    """One study of the notebook, read from its sweep folder."""

    sweep: Path
    record: dict[str, Any]
    #: the section title: the study's name, plus its folder when two sweeps ran the same study
    title: str = ""

    @property
    def name(self) -> str:
        return str(self.record.get("study") or self.sweep.name)

    @property
    def anchor(self) -> str:
        return "study-" + "".join(c if c.isalnum() else "-" for c in self.title or self.name)

    def figure(self) -> tuple[Path, str] | None:
        """The key figure (the study section's first) and its caption, if its file exists."""
        for figure in self.record.get("figures", []):
            path = self.sweep / figure["file"]
            if path.is_file():
                return path, figure.get("caption", "")
        return None

    def run_line(self) -> str:
        """``6 jobs (1 failed) · data mnist · 5 epochs · 3 seeds · limit_train_batches=5``."""
        r = self.record
        failed = r.get("jobs", 0) - r.get("finished", 0)
        jobs = r.get("jobs", 0)
        parts = [
            f"{jobs} job{'s' if jobs != 1 else ''}" + (f" ({failed} failed)" if failed else "")
        ]
        if r.get("data"):
            parts.append("data " + ", ".join(r["data"]))
        if r.get("epochs"):
            parts.append(f"{r['epochs']} epochs" if r["epochs"] != 1 else "1 epoch")
        if r.get("seeds"):
            parts.append(f"{r['seeds']} seeds" if r["seeds"] != 1 else "1 seed")
        parts += [f"{k.split('.')[-1]}={v}" for k, v in r.get("limits", {}).items()]
        return " · ".join(parts)


def find_entries(root: Path) -> tuple[list[Entry], list[str]]:
    """The studies under ``root`` (one sweep folder each, any depth), in :data:`ORDER`,
    and notes on sweep folders that are not studies."""
    from mnistlab.report import build_report

    entries, notes = [], []
    sweeps = sorted({p.parent for p in root.glob("**/multirun.yaml")} | {
        p.parent for p in root.glob(f"**/{RECORD}")
    })  # fmt: skip
    for sweep in sweeps:
        if not (sweep / RECORD).is_file() and not (sweep / "report.html").is_file():
            build_report(sweep)  # a sweep that ended before its report
        if not (sweep / RECORD).is_file():
            notes.append(
                f"{sweep}: no study section (no `report:` block in its experiment, or a report "
                f"older than the notebook: rebuild it with python -m mnistlab.report {sweep})"
            )
            continue
        entries.append(Entry(sweep, json.loads((sweep / RECORD).read_text())))
    rank = {name: i for i, name in enumerate(ORDER)}
    entries.sort(key=lambda e: (rank.get(e.name, len(ORDER)), e.name, str(e.sweep)))
    names = [e.name for e in entries]
    for e in entries:
        twice = names.count(e.name) > 1  # e.g. <dir>/mnist/lr and <dir>/fashion/lr
        e.title = f"{e.name} ({e.sweep.relative_to(root).as_posix()})" if twice else e.name
    return entries, notes


def _link(entry: Entry, out_dir: Path) -> str:
    return Path(os.path.relpath(entry.sweep / "report.html", out_dir)).as_posix()


def _markdown(entries: list[Entry], notes: list[str], out_dir: Path, title: str) -> str:
    md = [f"# {title}", ""] + ([f"_{_shortened(entries)}_", ""] if _shortened(entries) else [])
    md += ["## Contents", ""]
    md += [f"- [{e.title}](#{e.anchor}): {e.record.get('question', '')}" for e in entries]
    for e in entries:
        answer = e.record.get("answer", [])
        md += ["", f'<a id="{e.anchor}"></a>', "", f"## {e.title}", ""]
        md += [f"**Question.** {e.record.get('question', '')}", "", f"_{e.run_line()}_", ""]
        md += ["**Answer.**", "", *[f"- {s}" for s in answer]]
        figure = e.figure()
        if figure is not None:
            rel = Path(os.path.relpath(figure[0], out_dir)).as_posix()
            md += ["", f"![{e.name}]({rel})", "", f"_{figure[1]}_"]
        md += ["", f"Full report: [{_link(e, out_dir)}]({_link(e, out_dir)})"]
    md += ["", *[f"- _{n}_" for n in notes]] if notes else []
    return "\n".join(md) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1.2em;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#555;margin-top:0}nav ol{columns:2;column-gap:2.5em;padding-left:1.4em}
nav li{margin:.25em 0;break-inside:avoid}nav .q{color:#555;font-size:.9em}
.question{font-size:1.05em}.run{color:#666;font-size:.85em}
ul.answer li{margin:.3em 0}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;max-width:900px}
.note{color:#8a5a00;font-size:.9em}a{color:#1a5fb4}
"""


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_entry(e: Entry, out_dir: Path) -> list[str]:
    esc = html.escape
    answer = e.record.get("answer", [])
    body = [
        f'<section id="{e.anchor}"><h2>{esc(e.title)}</h2>',
        f'<p class="question"><b>Question.</b> {esc(e.record.get("question", ""))}</p>',
        f'<p class="run">{esc(e.run_line())}</p>',
        '<p><b>Answer.</b></p><ul class="answer">'
        + "".join(f"<li>{esc(s)}</li>" for s in answer)
        + "</ul>",
    ]
    figure = e.figure()
    if figure is not None:
        body.append(
            f'<figure><img alt="{esc(e.name)}: key figure" src="{_image(figure[0])}">'
            f"<figcaption>{esc(figure[1])}</figcaption></figure>"
        )
    link = esc(_link(e, out_dir))
    body.append(f'<p>Full report: <a href="{link}">{link}</a></p></section>')
    return body


def _shortened(entries: list[Entry]) -> str:
    """A warning when batches per epoch were limited: such numbers show how a study works,
    not its answer."""
    limited = [e.name for e in entries if e.record.get("limits")]
    if not limited:
        return ""
    return (
        f"Shortened run: {len(limited)} of {len(entries)} studies trained on a limited number of "
        "batches per epoch (see each study's run line). Their numbers show how each study "
        "works, not its answer; run `make studies` without LIMIT for that."
    )


def _html(entries: list[Entry], notes: list[str], out_dir: Path, title: str) -> str:
    esc = html.escape
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    contents = "".join(
        f'<li><a href="#{e.anchor}">{esc(e.title)}</a><br><span class="q">'
        f"{esc(e.record.get('question', ''))}</span></li>"
        for e in entries
    )
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{len(entries)} studies, generated {stamp} by '
        "<code>python -m mnistlab.report --notebook</code>. Each section: the study's question, "
        "the answer its sweep report wrote from the data, its key figure, and a link to the "
        "full report.</p>",
        *([f'<p class="note">{esc(_shortened(entries))}</p>'] if _shortened(entries) else []),
        f"<nav><h2>Contents</h2><ol>{contents}</ol></nav>",
    ]
    for e in entries:
        body += _html_entry(e, out_dir)
    body += [f'<p class="note">{esc(n)}</p>' for n in notes]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def build_notebook(root: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``notebook.html`` and ``notebook.md`` for the study sweeps under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; pass the folder of `make studies`")
    entries, notes = find_entries(root)
    if not entries:
        raise FileNotFoundError(
            f"no study sweeps under {root} (folders with multirun.yaml and a study report)"
        )
    out = Path(out_dir) if out_dir else root
    out.mkdir(parents=True, exist_ok=True)
    title = f"mnistlab lab notebook: {root.name}"
    paths = {"notebook_html": out / "notebook.html", "notebook_md": out / "notebook.md"}
    paths["notebook_html"].write_text(_html(entries, notes, out, title), encoding="utf-8")
    paths["notebook_md"].write_text(_markdown(entries, notes, out, title), encoding="utf-8")
    return paths
