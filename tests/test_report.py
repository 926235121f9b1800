"""The sweep report: known statistics on a synthetic multirun folder, and a real (tiny) sweep end to end."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, requires_data

from mnistlab.report import analyze, build_report, collect
from mnistlab.report.__main__ import main as report_main
from mnistlab.report.stats import eta_squared

# (model, seed) -> val/acc_best; test/acc = val - 0.01; train time grows with the model
KNOWN = {
    ("softmax", 1): 0.80,
    ("softmax", 2): 0.82,
    ("softmax", 3): 0.84,
    ("mlp", 1): 0.88,
    ("mlp", 2): 0.89,
    ("mlp", 3): 0.90,
    ("cnn", 1): 0.91,
    ("cnn", 2): 0.93,
}
TIME = {"softmax": 10.0, "mlp": 20.0, "cnn": 60.0}


def fake_job(
    root: Path,
    num: int,
    overrides: list[str],
    metrics: dict | None,
    epochs: int = 3,
    per_class: dict | None = None,
) -> Path:
    """A job folder like Hydra + mnistlab leave it: .hydra/overrides.yaml, metrics.json, history.csv."""
    name = f"{num}_" + ",".join(overrides)
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"optimized_metric": "val/acc_best"})
    )
    if metrics is None:
        return job
    (job / "metrics.json").write_text(json.dumps(metrics))
    if metrics.get("status") == "ok":
        final = metrics["val/acc_best"]
        with open(job / "history.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["epoch", "train/acc", "train/loss", "val/acc", "val/loss"])
            writer.writeheader()
            for e in range(epochs):
                val = final - 0.05 * (epochs - 1 - e)
                writer.writerow(
                    {
                        "epoch": e + 1,
                        "train/acc": val + 0.02,
                        "train/loss": 1 - val,
                        "val/acc": val,
                        "val/loss": 1.1 - val,
                    }
                )
    if per_class:
        (job / "artifacts").mkdir()
        with open(job / "artifacts" / "per_class.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["class", "precision", "recall", "f1", "support"])
            writer.writeheader()
            for name_, f1 in per_class.items():
                writer.writerow(
                    {"class": name_, "precision": f1, "recall": f1, "f1": f1, "support": 100}
                )
    return job


@pytest.fixture
def synthetic_sweep(tmp_path) -> Path:
    root = tmp_path / "multirun" / "2026-01-01" / "12-00-00"
    num = 0
    for model in ("softmax", "mlp", "cnn"):
        for seed in (1, 2, 3):
            overrides = [f"model={model}", f"seed={seed}", "data=fashion_mnist"]
            if (model, seed) not in KNOWN:  # cnn seed 3 fails
                fake_job(
                    root,
                    num,
                    overrides,
                    {"status": "failed", "error": "ConfigError: model.activation='x'"},
                )
            else:
                val = KNOWN[(model, seed)]
                fake_job(
                    root,
                    num,
                    overrides,
                    {
                        "status": "ok",
                        "val/acc_best": val,
                        "test/acc": val - 0.01,
                        "test/f1_macro": val - 0.02,
                        "test/loss": 1 - val,
                        "train_time_s": TIME[model] + seed,
                        "epochs": 3,
                        "params": 100,
                    },
                    per_class={"T-shirt": val - 0.1, "Trouser": val + 0.05},
                )
            num += 1
    fake_job(
        root, num, ["model=mlp", "seed=4", "data=fashion_mnist"], None
    )  # killed: no metrics.json
    (root / "multirun.yaml").write_text("{}\n")
    return root


def test_known_means_stds_and_ranking(synthetic_sweep):
    analysis = analyze(collect(synthetic_sweep), "val/acc_best")
    assert analysis.varying == ["model"]
    assert analysis.common == {"data": "fashion_mnist"}
    by_model = {g.params["model"]: g for g in analysis.groups}
    stat = by_model["softmax"].stats["val/acc_best"]
    assert stat.n == 3
    assert stat.mean == pytest.approx(0.82)
    assert stat.std == pytest.approx(0.02)  # sample std of 0.80, 0.82, 0.84
    cnn = by_model["cnn"].stats["test/acc"]
    assert (cnn.n, cnn.mean, cnn.std) == (
        2,
        pytest.approx(0.91),
        pytest.approx(math.sqrt(2) * 0.01),
    )
    assert [g.params["model"] for g in analysis.groups] == ["cnn", "mlp", "softmax"]
    assert [g.rank for g in analysis.groups] == [1, 2, 3]
    assert len(by_model["cnn"].failed) == 1 and len(by_model["mlp"].failed) == 1  # failed + missing


def test_ranking_by_a_loss_puts_the_lowest_first(synthetic_sweep):
    analysis = analyze(collect(synthetic_sweep), "test/loss")
    assert [g.params["model"] for g in analysis.groups] == ["cnn", "mlp", "softmax"]


def test_importance_of_a_hyperparameter_that_explains_everything():
    assert eta_squared(np.array([1.0, 1.0, 2.0, 2.0]), ["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert eta_squared(np.array([1.0, 2.0, 1.0, 2.0]), ["a", "a", "b", "b"]) == pytest.approx(0.0)


def test_importance_separates_the_hyperparameter_that_matters(synthetic_sweep):
    analysis = analyze(collect(synthetic_sweep), "val/acc_best")
    assert analysis.importance["model"] > 0.9  # model explains most of the variance
    assert analysis.importance["model"] + analysis.importance["seed / residual"] == pytest.approx(
        1.0
    )


def test_report_files_hold_the_known_numbers_and_the_failures(synthetic_sweep):
    paths = build_report(synthetic_sweep)
    with open(paths["summary"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10  # one row per job, failed and missing ones included
    statuses = {r["job"]: r["status"] for r in rows}
    assert statuses["8"] == "failed" and statuses["9"] == "missing"
    failed = next(r for r in rows if r["job"] == "8")
    assert "ConfigError" in failed["error"] and failed["model"] == "cnn" and failed["seed"] == "3"
    assert float(next(r for r in rows if r["job"] == "0")["val/acc_best"]) == pytest.approx(0.80)
    md = paths["markdown"].read_text()
    ranking = [
        line
        for line in md.splitlines()
        if line.startswith("| 1 ") or line.startswith("| 2 ") or line.startswith("| 3 ")
    ]
    assert "model=cnn" in ranking[0] and "model=mlp" in ranking[1] and "model=softmax" in ranking[2]
    assert "82.00 ± 2.00" in ranking[2]  # softmax val/acc_best in %, mean ± sample std
    assert "| 3 |" in ranking[2]  # three seeds
    assert "Failed jobs" in md and "ConfigError: model.activation='x'" in md
    figures = {p.stem for p in (synthetic_sweep / "report_files").glob("*.png")}
    assert {
        "metric_bars",
        "val_curves",
        "generalization_gap",
        "parallel_coordinates",
        "importance",
        "accuracy_vs_time",
        "per_class_f1",
    } <= figures


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        self.tables += tag == "table"


def embedded_images(html_path: Path) -> _Images:
    parser = _Images()
    parser.feed(html_path.read_text())
    parser.close()
    return parser


def test_html_is_self_contained(synthetic_sweep):
    paths = build_report(synthetic_sweep)
    parsed = embedded_images(paths["html"])
    assert len(parsed.sources) == 7 and parsed.tables == 3  # best-vs-others + ranking + failures
    assert all(s.startswith("data:image/png;base64,iVBOR") for s in parsed.sources)


def test_report_without_per_class_metrics_says_why(synthetic_sweep):
    for path in synthetic_sweep.glob("*/artifacts/per_class.csv"):
        path.unlink()
    md = build_report(synthetic_sweep)["markdown"].read_text()
    assert "per-class heatmap is skipped" in md


def test_cli_names_a_folder_that_is_not_a_sweep(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 1
    assert "no job folders" in capsys.readouterr().err


def _sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MNISTLAB_CPU_THREADS": "1",
        "MNISTLAB_DATA_ROOT": str(
            os.environ.get("MNISTLAB_DATA_ROOT", REPO.parent / "shared" / "data")
        ),
    }
    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        *overrides,
        "debug=fast",
        "data.train_size=2000",
        "logger=none",
        "callbacks=none",  # the test-set artifacts of every run are not what this test checks
        f"hydra.sweep.dir={tmp_path}",
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@requires_data
def test_real_sweep_with_a_failing_job_ends_in_a_report(tmp_path):
    """3 jobs on the joblib launcher, one with an activation that fails at build time: the
    report is written, then the command says which job failed and exits with status 1."""
    result = _sweep(tmp_path, "launcher=joblib", "model.activation=relu,tanh,bogus")
    assert result.returncode == 1, result.stderr[-3000:]
    (failed,) = tmp_path.glob("2_*")
    assert result.stderr.strip().splitlines()[-1] == f"1 of 3 jobs failed: {failed.name}"
    with open(tmp_path / "summary.csv") as f:
        rows = {r["model.activation"]: r for r in csv.DictReader(f)}
    assert rows["relu"]["status"] == "ok" and rows["tanh"]["status"] == "ok"
    assert 0.1 < float(rows["relu"]["test/acc"]) <= 1.0
    assert (
        rows["bogus"]["status"] == "failed" and "model.activation='bogus'" in rows["bogus"]["error"]
    )
    parsed = embedded_images(tmp_path / "report.html")
    assert len(parsed.sources) >= 5
    assert all(s.startswith("data:image/png;base64,") for s in parsed.sources)
    assert "Sweep report:" in result.stdout


def test_sampled_search_uses_forest_importance_and_finds_the_driving_hyperparameter(tmp_path):
    """Optuna-style jobs (a new value per job): eta^2 would be 1 for everything; the forest is used."""
    rng = np.random.default_rng(0)
    for num in range(30):
        lr, dropout = 10 ** rng.uniform(-4, -1), rng.uniform(0, 0.5)
        val = 0.9 - 0.05 * abs(math.log10(lr) + 2.5)  # only lr matters
        fake_job(
            tmp_path,
            num,
            [f"optimizer.lr={lr:.6g}", f"model.dropout={dropout:.4f}"],
            {"status": "ok", "val/acc_best": val, "test/acc": val, "train_time_s": 1.0},
        )
    analysis = analyze(collect(tmp_path), "val/acc_best")
    assert analysis.importance_method == "random-forest permutation importance"
    assert analysis.importance["optimizer.lr"] > 0.8 > analysis.importance["model.dropout"]
    assert "random forest" in build_report(tmp_path)["markdown"].read_text()
