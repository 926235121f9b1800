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
    settings: list[str] = field(default_factory=list)  # config keys differing between groups

    def setting(self, group: Group, key: str) -> str:
        """``key``'s value in ``group`` (constant inside it by construction of ``settings``)."""
        for job in group.jobs:
            value = job.setting(key)
            if value is not None:
                return str(value)
        return ""


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
    return Analysis(
        jobs,
        metric,
        varying,
        common,
        ordered,
        *importance(jobs, varying, metric),
        settings=differing_settings(ordered, varying),
    )


#: config keys never reported as "differing hyperparameters": bookkeeping, not design choices
_BOOKKEEPING = ("hydra", "paths", "logger", "callbacks", "report", "seed", "name", "tags")


def differing_settings(groups: list[Group], swept: list[str]) -> list[str]:
    """Config keys (dotted) constant inside every group but different between groups.

    These are the hyperparameters a reader must see besides the swept ones: e.g. each
    optimizer's own default lr when the sweep is over ``optimizer``. ``_target_`` keys and
    bookkeeping (paths, loggers, callbacks) are left out; so are keys already swept.
    """
    from mnistlab.report.collect import flatten

    per_group: list[dict[str, str]] = []
    for group in groups:
        values: dict[str, set[str]] = {}
        for job in group.jobs:
            for key, value in flatten(job.config).items():
                values.setdefault(key, set()).add(str(value))
        per_group.append({k: next(iter(v)) for k, v in values.items() if len(v) == 1})
    if len(per_group) < 2 or not all(per_group):
        return []
    keys = [k for k in per_group[0] if all(k in g for g in per_group[1:])]
    return [
        key
        for key in keys
        if key not in swept
        and not key.endswith("_target_")
        and key.split(".")[0] not in _BOOKKEEPING
        and len({g[key] for g in per_group}) > 1
    ]


@dataclass
class Comparison:
    """The best group against another one on ``metric``: Welch's t-test over seeds.

    ``diff`` = best mean - other mean (in the metric's units); ``ci`` its 95% confidence
    interval from the t distribution with Welch–Satterthwaite degrees of freedom ``df``;
    ``t``/``p`` from :func:`scipy.stats.ttest_ind` with ``equal_var=False`` (two-sided).
    ``t``, ``df``, ``p`` and ``ci`` are NaN when a group has fewer than 2 seeds or no spread.
    """

    best: Group
    other: Group
    metric: str
    diff: float
    ci: tuple[float, float]
    t: float
    df: float
    p: float
    n_best: int
    n_other: int

    @property
    def testable(self) -> bool:
        return not math.isnan(self.p)

    @property
    def within_noise(self) -> bool:
        """Not distinguishable from seed noise: p >= 0.05 or the CI covers 0 (or not testable)."""
        lo, hi = self.ci
        return not self.testable or self.p >= 0.05 or lo <= 0 <= hi


def welch(a: list[float], b: list[float]) -> tuple[float, tuple[float, float], float, float, float]:
    """``(mean(a) - mean(b), 95% CI, t, df, p)`` of Welch's unequal-variance t-test."""
    from scipy import stats as st

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(x.mean() - y.mean()) if x.size and y.size else math.nan
    nan = (diff, (math.nan, math.nan), math.nan, math.nan, math.nan)
    if x.size < 2 or y.size < 2:
        return nan
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0:
        return nan
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(st.t.ppf(0.975, df)) * se
    result = st.ttest_ind(x, y, equal_var=False)
    return (
        diff,
        (diff - half, diff + half),
        float(result.statistic),
        float(df),
        float(result.pvalue),
    )


def compare_to_best(analysis: Analysis) -> list[Comparison]:
    """The best-ranked group against every other ranked group, in rank order."""
    ranked = [g for g in analysis.groups if g.rank is not None]
    if len(ranked) < 2:
        return []
    best, metric = ranked[0], analysis.metric

    def values(group: Group) -> list[float]:
        return [v for v in (j.metric(metric) for j in group.finished) if not math.isnan(v)]

    out = []
    for other in ranked[1:]:
        a, b = values(best), values(other)
        diff, ci, t, df, p = welch(a, b)
        out.append(Comparison(best, other, metric, diff, ci, t, df, p, len(a), len(b)))
    return out


PERCENT_METRICS = ("acc", "acc_best", "f1_macro", "precision_macro", "recall_macro")


def is_percent(metric: str) -> bool:
    return metric.split("/")[-1] in PERCENT_METRICS


def short_label(group: Group) -> str:
    """``model=cnn optimizer=adam`` -> ``cnn+adam``; a value alone can be ambiguous
    (``true``), so booleans and bare numbers keep their key's last part."""
    parts = []
    for key, value in group.params.items():
        bare = value.lower() in ("true", "false") or value.replace(".", "").isdigit()
        parts.append(f"{key.split('.')[-1]}={value}" if bare else value)
    return "+".join(parts) or "(all jobs)"


def amount(value: float, metric: str) -> str:
    """A difference in the metric's reading unit: accuracy points (x100) or 4 significant digits."""
    return f"{value * 100:.2f}" if is_percent(metric) else f"{value:.4g}"


def comparison_sentence(c: Comparison) -> str:
    """One plain sentence: who beats whom by how much, the 95% CI, the test, the seeds."""
    unit = " points" if is_percent(c.metric) else ""
    best, other = short_label(c.best), short_label(c.other)
    gap = abs(c.diff)
    seeds = f"{c.n_best}" if c.n_best == c.n_other else f"{c.n_best} vs {c.n_other}"
    seeds += " seed" if seeds == "1" else " seeds"
    if not c.testable:
        why = "fewer than 2 seeds in a group" if min(c.n_best, c.n_other) < 2 else "no seed spread"
        return (
            f"{best} is ahead of {other} by {amount(gap, c.metric)}{unit} on {c.metric} "
            f"({seeds}; no test: {why})."
        )
    lo, hi = c.ci if c.diff >= 0 else (-c.ci[1], -c.ci[0])  # the CI of the gap, best ahead
    ci = f"95% CI [{amount(lo, c.metric)}, {amount(hi, c.metric)}]"
    test = f"Welch's t = {c.t:.2f}, df = {c.df:.1f}, p = {c.p:.2g}"
    if c.within_noise:
        return (
            f"{best} vs {other}: a difference of {amount(gap, c.metric)}{unit} on {c.metric} is "
            f"inside the seed noise ({ci} covers 0; {test}; {seeds})."
        )
    return (
        f"{best} beats {other} by {amount(gap, c.metric)}{unit} on {c.metric}, {ci} "
        f"({test}; {seeds})."
    )
