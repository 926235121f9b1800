"""Read a multirun directory: one :class:`Job` per job folder (overrides, metrics, history, per-class F1)."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SEED_KEY = "seed"


@dataclass
class Job:
    """One job of a sweep, as found on disk.

    ``status`` is the one in ``metrics.json`` (ok, diverged, failed) or ``missing``
    when the job left no ``metrics.json`` (killed, or still running).
    """

    num: int
    path: Path
    overrides: dict[str, str]
    status: str
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    per_class_f1: dict[str, float] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> str | None:
        return self.overrides.get(SEED_KEY)

    @property
    def ok(self) -> bool:
        """Finished training (diverged runs included: their metrics are a real outcome)."""
        return self.status in ("ok", "diverged")

    def setting(self, key: str) -> Any:
        """A value of the composed config by dotted key (``optimizer.lr``); None when absent."""
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def metric(self, name: str) -> float:
        value = self.metrics.get(name)
        return float(value) if isinstance(value, (int, float)) and value is not None else math.nan


def override_key(override: str) -> tuple[str, str]:
    """``+model.x=3`` -> (``model.x``, ``3``); ``~key`` -> (``key``, ``<deleted>``)."""
    key, _, value = override.partition("=")
    if key.startswith("~"):
        return key.lstrip("~"), "<deleted>"
    return key.lstrip("+"), value


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: _float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _per_class_rows(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        for key in ("per_class", "classes", "rows"):
            if isinstance(data.get(key), (list, dict)):
                return _per_class_rows(data[key])
        if all(isinstance(v, dict) for v in data.values()):
            return [{"class": k, **v} for k, v in data.items()]
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    return []


def read_per_class_f1(run_dir: Path) -> dict[str, float] | None:
    """Per-class test F1 from ``artifacts/per_class*.{csv,json}`` (written by the per-class-metrics callback)."""
    candidates = sorted((run_dir / "artifacts").glob("**/per_class*.json")) + sorted(
        (run_dir / "artifacts").glob("**/per_class*.csv")
    )
    for path in candidates:
        try:
            if path.suffix == ".json":
                rows = _per_class_rows(json.loads(path.read_text()))
            else:
                with open(path, newline="") as f:
                    rows = list(csv.DictReader(f))
        except (OSError, ValueError):
            continue
        f1: dict[str, float] = {}
        for row in rows:
            name = next(
                (row[k] for k in ("class", "class_name", "name", "label") if k in row), None
            )
            value = next((row[k] for k in ("f1", "F1", "f1_score", "test/f1") if k in row), None)
            if name is not None and value is not None and not math.isnan(_float(value)):
                f1[str(name)] = _float(value)
        if f1:
            return f1
    return None


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 0.1}}`` -> ``{"optimizer.lr": 0.1}`` (lists stay leaves)."""
    if not isinstance(config, dict):
        return {prefix: config} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def read_config(path: Path) -> dict[str, Any]:
    """The composed config Hydra saved (``.hydra/config.yaml``); {} when absent or unreadable."""
    file = path / ".hydra" / "config.yaml"
    try:
        loaded = yaml.safe_load(file.read_text()) if file.is_file() else None
    except (OSError, yaml.YAMLError):
        return {}
    return _resolved(loaded) if isinstance(loaded, dict) else {}


def _resolved(raw: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``${...}`` interpolations leaf by leaf (Hydra saves them unresolved); a leaf that
    needs a resolver not registered here (``${now:...}``) keeps its text."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(raw)

    def walk(node: Any, prefix: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in node.items()}
        if isinstance(node, str) and "${" in node:
            value = OmegaConf.select(cfg, prefix, throw_on_resolution_failure=False)
            if value is not None:
                return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        return node

    return walk(raw, "")


def _job_number(path: Path, fallback: int) -> int:
    match = re.match(r"(\d+)", path.name)
    return int(match.group(1)) if match else fallback


def read_job(path: Path, fallback_num: int = 0) -> Job:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = dict(override_key(o) for o in (yaml.safe_load(overrides_file.read_text()) or []))
    metrics_file = path / "metrics.json"
    metrics: dict[str, Any] = {}
    status, error = "missing", "no metrics.json: the job was killed or is still running"
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
            status, error = str(metrics.get("status", "ok")), metrics.get("error")
        except ValueError as err:
            status, error = "failed", f"unreadable metrics.json: {err}"
    if status == "missing" and (path / "error.log").is_file():
        status, error = "failed", (path / "error.log").read_text().strip().splitlines()[-1]
    return Job(
        num=_job_number(path, fallback_num),
        path=path,
        overrides=overrides,
        status=status,
        error=error,
        metrics=metrics,
        history=read_history(path / "history.csv"),
        per_class_f1=read_per_class_f1(path),
        config=read_config(path),
    )


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Folders holding ``.hydra/overrides.yaml`` under ``sweep_dir`` (not the sweep dir itself)."""
    found = sorted({p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")})
    return [p for p in found if p != sweep_dir]


def collect(sweep_dir: str | Path) -> list[Job]:
    """Every job of a multirun directory, in job-number order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(
            f"{sweep_dir} is not a directory; pass a multirun folder, e.g. multirun/<date>/<time>"
        )
    jobs = [read_job(p, i) for i, p in enumerate(find_job_dirs(sweep_dir))]
    if not jobs:
        raise FileNotFoundError(
            f"no job folders (with .hydra/overrides.yaml) under {sweep_dir}; is it the folder of a `-m` run?"
        )
    return sorted(jobs, key=lambda j: (j.num, str(j.path)))
