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

from collections.abc import Callable
from typing import Any

from mnistlab.report.stats import Analysis
from mnistlab.report.study.common import Answer, Study, study_name, study_spec
from mnistlab.report.study.comparison import (
    answer_groups,
    answer_objectives,
    answer_seed_spread,
    difference_figure,
    objective,
)
from mnistlab.report.study.dead_units import answer_dead_units
from mnistlab.report.study.gap import answer_gap
from mnistlab.report.study.grad_norms import answer_grad_norms, grad_ratio
from mnistlab.report.study.lr_curves import answer_lr_curves
from mnistlab.report.study.metric_vs import answer_metric_vs, x_value
from mnistlab.report.study.neuron_traces import answer_neuron_traces, trace_verdict

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


__all__ = [
    "ANSWERS",
    "Answer",
    "Study",
    "answer_objectives",
    "build_study",
    "difference_figure",
    "grad_ratio",
    "objective",
    "study_name",
    "study_spec",
    "trace_verdict",
    "x_value",
]
