"""Group jobs by their non-seed overrides; mean +- std over seeds; ranking; hyperparameter importance."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mnistlab.report.collect import SEED_KEY, Job

#: metrics summarized per group, in table order
METRICS = (
    "val/acc_best",
    "test/acc",
    "test/f1_macro",
    "test/loss",
    "train_time_s",
    "epochs",
    "params",
)
LOWER_IS_BETTER = ("loss", "time", "params", "error")


def higher_is_better(metric: str) -> bool:
    return not any(word in metric for word in LOWER_IS_BETTER)


@dataclass
class Stat:
    """Mean and sample standard deviation (ddof=1; NaN for a single value) of ``n`` finite values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        finite = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
        if finite.size == 0:
            return cls(math.nan, math.nan, 0)
        std = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        return cls(float(finite.mean()), std, int(finite.size))


@dataclass
class Group:
    """The jobs sharing every non-seed override (the repeats of one configuration)."""

    params: dict[str, str]
    jobs: list[Job]
    stats: dict[str, Stat] = field(default_factory=dict)
    rank: int | None = None

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.params.items()) or "(all jobs)"

    @property
    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.ok]

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.jobs if not j.ok]


@dataclass
class Analysis:
    jobs: list[Job]
    metric: str
    varying: list[str]  # non-seed override keys that differ between jobs
    common: dict[str, str]  # overrides shared by every job
    groups: list[Group]  # in rank order (unranked groups last)
    importance: dict[str, float]  # per varying key (+ "seed / residual" for eta^2)
    importance_method: str  # "eta^2" or "random-forest permutation importance"


def split_overrides(jobs: list[Job]) -> tuple[list[str], dict[str, str]]:
    """Keys whose value differs between jobs (seed excluded), and the overrides every job shares."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    varying, common = [], {}
    for key in keys:
        values = {job.overrides.get(key) for job in jobs}
        if key == SEED_KEY:
            continue
        if len(values) > 1:
            varying.append(key)
        else:
            common[key] = next(iter(values)) or ""
    return varying, common


def group_jobs(jobs: list[Job], varying: list[str]) -> list[Group]:
    groups: dict[tuple[str | None, ...], Group] = {}
    for job in jobs:
        key = tuple(job.overrides.get(k) for k in varying)
        if key not in groups:
            groups[key] = Group(
                {k: v for k, v in zip(varying, key, strict=True) if v is not None}, []
            )
        groups[key].jobs.append(job)
    return list(groups.values())


def eta_squared(values: np.ndarray, labels: list[str]) -> float:
    """Share of the variance of ``values`` explained by grouping on ``labels`` (one-way ANOVA eta^2)."""
    total = float(((values - values.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    between = 0.0
    for label in set(labels):
        member = values[[lab == label for lab in labels]]
        between += member.size * float((member.mean() - values.mean()) ** 2)
    return between / total


def _encode(values: list[str]) -> np.ndarray:
    """A hyperparameter's values as numbers: floats (log10 when positive and spanning > 1 decade) or codes."""
    try:
        numbers = np.asarray([float(v) for v in values])
    except ValueError:
        codes = {v: i for i, v in enumerate(sorted(set(values)))}
        return np.asarray([codes[v] for v in values], dtype=float)
    if (numbers > 0).all() and numbers.max() / numbers.min() > 10:
        return np.log10(numbers)
    return numbers


def forest_importance(
    values: np.ndarray, columns: dict[str, list[str]], seed: int = 0
) -> dict[str, float]:
    """Permutation importance of a random forest fitted to the metric, normalized to sum to 1."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    x = np.stack([_encode(v) for v in columns.values()], axis=1)
    forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed).fit(
        x, values
    )
    scores = permutation_importance(
        forest, x, values, n_repeats=10, random_state=seed
    ).importances_mean
    scores = np.clip(scores, 0, None)
    total = scores.sum()
    return {k: float(v / total) if total > 0 else 0.0 for k, v in zip(columns, scores, strict=True)}


def importance(jobs: list[Job], varying: list[str], metric: str) -> tuple[dict[str, float], str]:
    """Importance of each swept hyperparameter for ``metric``, and the method used.

    Grids (every value of every key repeated across jobs): eta^2 = between-value
    variance / total variance over the finished jobs (the main effect, as in one-way
    ANOVA), plus ``seed / residual``, the variance left within groups of identical
    configurations. Searches that sample new values per job (Optuna), where eta^2
    would be trivially 1: permutation importance of a random forest fitted to the metric.
    """
    scored = [j for j in jobs if j.ok and not math.isnan(j.metric(metric))]
    if len(scored) < 3 or not varying:
        return {}, ""
    values = np.asarray([j.metric(metric) for j in scored])
    columns = {k: [str(j.overrides.get(k)) for j in scored] for k in varying}
    if any(len(set(c)) > len(c) / 2 for c in columns.values()):
        return forest_importance(values, columns), "random-forest permutation importance"
    result = {k: eta_squared(values, c) for k, c in columns.items()}
    full = eta_squared(values, ["|".join(row) for row in zip(*columns.values(), strict=True)])
    result["seed / residual"] = 1.0 - full if values.var() > 0 else 0.0
    return result, "eta^2"


def analyze(jobs: list[Job], metric: str = "val/acc_best") -> Analysis:
    """Group, summarize and rank the jobs of a sweep by ``metric`` (mean over seeds)."""
    varying, common = split_overrides(jobs)
    groups = group_jobs(jobs, varying)
    for group in groups:
        group.stats = {
            m: Stat.of([j.metric(m) for j in group.finished]) for m in (*METRICS, metric)
        }
    ranked = [g for g in groups if g.stats[metric].n > 0]
    sign = -1.0 if higher_is_better(metric) else 1.0
    ranked.sort(key=lambda g: sign * g.stats[metric].mean)
    for i, group in enumerate(ranked, start=1):
        group.rank = i
    ordered = ranked + [g for g in groups if g.rank is None]
    return Analysis(jobs, metric, varying, common, ordered, *importance(jobs, varying, metric))
