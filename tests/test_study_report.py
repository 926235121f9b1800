"""Study-aware report section and best-vs-others statistics on synthetic sweeps with known numbers."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import CONF, compose_config
from omegaconf import OmegaConf
from test_experiments import sweep_jobs

from mnistlab.report import analyze, build_report, collect
from mnistlab.report.figures import metric_bars
from mnistlab.report.render import make_figures
from mnistlab.report.stats import compare_to_best, comparison_sentence, welch
from mnistlab.report.study import build_study, objective, trace_verdict

STUDIES = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def fake_job(
    root: Path,
    num: int,
    overrides: list[str],
    val: float,
    config: dict | None = None,
    epochs: int = 3,
    best_epoch: int = 3,
) -> Path:
    """A finished job folder: overrides, composed config, metrics.json and history.csv
    (epochs 1..n, as the lab numbers them; history row e is epoch e + 1)."""
    job = root / f"{num}_job"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config or {}))
    metrics = {
        "status": "ok",
        "val/acc_best": val,
        "test/acc": val - 0.01,
        "best_epoch": best_epoch,
    }
    (job / "metrics.json").write_text(json.dumps(metrics))
    _csv(
        job / "history.csv",
        [
            {
                "epoch": e + 1,
                "lr": 0.1 / (e + 1),
                "train/acc": val - 0.1 * (epochs - 1 - e) + 0.02 * (e + 1),
                "train/loss": 1 - val,
                "val/acc": val - 0.1 * (epochs - 1 - e),
                "val/loss": 1.1 - val,
            }
            for e in range(epochs)
        ],
    )
    return job


REPORT = {"question": "Q?", "answer": []}


def _config(*kinds: dict, loss: str = "ce") -> dict:
    return {"report": {**REPORT, "answer": list(kinds)}, "module": {"loss": loss}}


# --- statistics ------------------------------------------------------------------------------


def test_welch_difference_ci_and_t_equal_hand_computed_values():
    # means 0.92 / 0.89, both sample std 0.01, n = 3: se = sqrt(2 * 1e-4 / 3) = 0.0081650,
    # t = 0.03 / se = 3.6742, Welch df = 4 exactly, t_0.975(4) = 2.776445 -> half-width 0.022670
    diff, (lo, hi), t, df, p = welch([0.91, 0.93, 0.92], [0.88, 0.89, 0.90])
    assert diff == pytest.approx(0.03)
    assert t == pytest.approx(0.03 / math.sqrt(2e-4 / 3)) == pytest.approx(3.674235, abs=1e-6)
    assert df == pytest.approx(4.0)
    assert (lo, hi) == (
        pytest.approx(0.03 - 0.0226696, abs=1e-6),
        pytest.approx(0.0526696, abs=1e-6),
    )
    assert p == pytest.approx(0.0213116, abs=1e-6)


def test_sentence_for_a_real_difference_and_for_seed_noise(tmp_path):
    for i, (model, vals) in enumerate(
        {
            "cnn": [0.91, 0.93, 0.92],
            "mlp": [0.88, 0.89, 0.90],
            "softmax": [0.90, 0.88, 0.93],
        }.items()
    ):
        for seed, v in enumerate(vals, start=1):
            fake_job(tmp_path, 3 * i + seed, [f"model={model}", f"seed={seed}"], v)
    analysis = analyze(collect(tmp_path), "val/acc_best")
    noise, real = compare_to_best(analysis)  # rank order: softmax (0.903) before mlp (0.89)
    assert comparison_sentence(real) == (
        "cnn beats mlp by 3.00 points on val/acc_best, 95% CI [0.73, 5.27] "
        "(Welch's t = 3.67, df = 4.0, p = 0.021; 3 seeds)."
    )
    assert noise.within_noise and noise.ci[0] < 0 < noise.ci[1]
    assert comparison_sentence(noise).startswith(
        "cnn vs softmax: a difference of 1.67 points on val/acc_best is inside the seed noise"
    )
    paths = build_report(tmp_path)
    md = paths["markdown"].read_text()
    assert "cnn beats mlp by 3.00 points" in md and "Welch" in md
    rows = list(csv.DictReader(paths["summary"].read_text().splitlines()))
    mlp = next(r for r in rows if r["group"] == "model=mlp")
    assert float(mlp["vs_best_welch_t"]) == pytest.approx(3.674235, abs=1e-5)
    assert float(mlp["vs_best_ci95_low"]) == pytest.approx(0.0073304, abs=1e-6)
    assert mlp["vs_best_verdict"] == "worse"
    assert next(r for r in rows if r["group"] == "model=softmax")["vs_best_verdict"] == "seed noise"


def test_hyperparameters_that_differ_between_groups_reach_table_and_csv(tmp_path):
    lrs = {"sgd": 0.1, "adam": 0.001}
    for i, (opt, lr) in enumerate(lrs.items()):
        for seed in (1, 2):
            config = {"optimizer": {"_target_": opt, "lr": lr}, "seed": seed}
            fake_job(
                tmp_path,
                2 * i + seed,
                [f"optimizer={opt}", f"seed={seed}"],
                0.9 + i / 100 + seed / 1000,
                config,
            )
    analysis = analyze(collect(tmp_path), "val/acc_best")
    assert analysis.settings == ["optimizer.lr"]
    paths = build_report(tmp_path)
    rows = list(csv.DictReader(paths["summary"].read_text().splitlines()))
    assert {r["optimizer"]: r["optimizer.lr"] for r in rows} == {"sgd": "0.1", "adam": "0.001"}
    assert "| optimizer.lr |" in paths["markdown"].read_text()


# --- answers with known numbers --------------------------------------------------------------


def _activation_json(job: Path, phases: dict[str, tuple[int, list[float]]], kind="relu") -> None:
    """``activation_stats.json`` as the diagnostic writes it: per phase its epoch and layers."""
    field = "dead_fraction" if kind == "relu" else "saturated_fraction"
    other = "saturated_fraction" if kind == "relu" else "dead_fraction"
    data = {
        phase: {"epoch": epoch, "layers": [
            {"layer": f"net.act{i + 1}", "kind": kind, "units": 4, field: v, other: None}
            for i, v in enumerate(values)
        ]}
        for phase, (epoch, values) in phases.items()
    }  # fmt: skip
    path = job / "artifacts" / "diagnostics" / "activation_stats.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tested": "best", **data}))


def test_dead_units_sentence_and_table(tmp_path):
    spec = _config({"kind": "dead_units"})
    # relu: layer 1 dead 10% at init, 30% on the best checkpoint (epoch 1), 50%/60% (seeds) at
    # the end (epoch 3); layer 2: 0% -> 10% -> 20%/40%
    for seed, (d1, d2) in enumerate([(0.5, 0.2), (0.6, 0.4)], start=1):
        job = fake_job(
            tmp_path, seed, ["model.activation=relu", f"seed={seed}"], 0.9, spec, best_epoch=1
        )
        _activation_json(
            job, {"init": (0, [0.1, 0.0]), "best": (1, [0.3, 0.1]), "end": (3, [d1, d2])}
        )
    study = build_study(analyze(collect(tmp_path)))
    assert study is not None and study.question == "Q?"
    # best: (30 + 10) / 2 = 20%; end: layer means 55% and 30% -> 42.5%; init (10 + 0) / 2 = 5%
    assert study.answer.sentences == [
        "(all jobs): 20.0% of hidden units dead in the tested model (best checkpoint, epoch 1), "
        "42.5% at the end (epoch 3), 5.0% at initialization (mean over 2 layers and 2 seeds); "
        "most in net.act1 (30.0%)."
    ]
    _, (header, rows) = study.answer.tables[0]
    assert header[4:] == ["init %", "best %", "end %", "best / end epoch"]
    assert rows[0] == [
        "(all jobs)",
        "net.act1",
        "relu",
        "dead",
        "10.0 ± 0.0",
        "30.0 ± 0.0",
        "55.0 ± 7.1",
        "1 / 3",
    ]
    md = build_report(tmp_path)["markdown"].read_text()
    assert (
        md.index("## Study:") < md.index("## Ranking")
        and "| net.act2 |" not in md.split("## Ranking")[1]
    )


def test_dead_units_name_the_epochs_of_each_seed_and_saturated_units(tmp_path):
    spec = _config({"kind": "dead_units"})
    for seed, best in ((1, 2), (2, 4)):
        job = fake_job(tmp_path, seed, ["model.activation=tanh", f"seed={seed}"], 0.9, spec)
        _activation_json(
            job, {"init": (0, [0.0]), "best": (best, [0.2]), "end": (5, [0.4])}, "tanh"
        )
    study = build_study(analyze(collect(tmp_path)))
    assert study.answer.sentences[0].startswith(
        "(all jobs): 20.0% of hidden units saturated in the tested model (best checkpoint, "
        "epoch 2-4), 40.0% at the end (epoch 5)"
    )
    titles = [ax.get_title() for ax in study.answer.figures[0][2].axes]
    assert titles == [
        "at initialization (epoch 0)",
        "best checkpoint, tested (epoch 2-4)",
        "end of training (epoch 5)",
    ]


def test_grad_norm_ratios_early_and_over_the_run(tmp_path):
    spec = _config({"kind": "grad_norms", "first_steps": 20})
    for seed in (1, 2):
        job = fake_job(tmp_path, seed, ["model.activation=sigmoid", f"seed={seed}"], 0.5, spec)
        # first layer 0.01 for steps 0, 10, then 1.0; last layer always 1.0
        rows = [
            {"step": s, "epoch": 1, "l1": 0.01 if s < 20 else 1.0, "l2": 1.0}
            for s in (0, 10, 20, 30)
        ]
        _csv(job / "artifacts" / "diagnostics" / "grad_norms.csv", rows)
    study = build_study(analyze(collect(tmp_path)))
    # one group (the only override is common): early 0.01 / 1; whole run (0.01+0.01+1+1)/4 = 0.505
    assert study.answer.sentences[0] == (
        "(all jobs): the first layer gets 0.01x the last layer's gradient over the first 20 steps "
        "and 0.505x over the whole run (mean over 2 seeds; val/acc_best 50.00 ± 0.00%)."
    )


def test_traces_tell_all_zero_from_identical_from_differing():
    import numpy as np

    assert trace_verdict(np.zeros((3, 4))) == "all zero"
    assert trace_verdict(np.full((3, 4), 0.2)) == "identical, non-zero"
    assert trace_verdict(np.array([[0.1, 0.2], [0.1, 0.1]])) == "units differ"


def test_metric_vs_lr_names_best_and_worst(tmp_path):
    spec = _config({"kind": "metric_vs", "x": "optimizer.lr", "log_x": True})
    for i, (lr, val) in enumerate({"1e-4": 0.90, "1e-3": 0.97, "1e-1": 0.11}.items()):
        for seed in (1, 2):
            fake_job(
                tmp_path,
                2 * i + seed,
                [f"optimizer.lr={lr}", f"seed={seed}"],
                val + seed / 1000,
                spec,
            )
    study = build_study(analyze(collect(tmp_path)))
    assert study.answer.sentences == [
        "val/acc_best is best at optimizer.lr = 0.001 (97.15%) and worst at 0.1 (11.15%), "
        "a spread of 86.00 points over 0.0001-0.1."
    ]
    fig = study.answer.figures[0][2]
    assert fig.axes[0].get_xscale() == "log"


def test_gap_at_the_best_epoch(tmp_path):
    spec = _config({"kind": "gap"})
    for seed in (1, 2):
        fake_job(tmp_path, seed, ["regularization=none", f"seed={seed}"], 0.9, spec, best_epoch=2)
    study = build_study(analyze(collect(tmp_path)))
    # train - val = 0.02 * epoch: 4 points at the best epoch 2, 6 at the end (epoch 3)
    assert study.answer.sentences == [
        "(all jobs): train accuracy is 4.00 points above validation at the best epoch and 6.00 "
        "points above it at the end."
    ]


# --- honest comparisons ----------------------------------------------------------------------


def test_losses_of_two_objectives_never_share_an_axis(tmp_path):
    for i, loss in enumerate(("ce", "mse")):
        for seed in (1, 2):
            fake_job(tmp_path, 2 * i + seed, [f"module.loss={loss}", f"seed={seed}"], 0.9 - i / 10 + seed / 100,
                     _config({"kind": "objectives"}, loss=loss))  # fmt: skip
    analysis = analyze(collect(tmp_path))
    study = build_study(analysis)
    made, _ = make_figures(analysis)
    figures = [f for _, _, f in made] + [f for _, _, f in study.answer.figures]
    by_label = {}
    for g in analysis.groups:
        by_label[g.label] = by_label[g.params["module.loss"]] = objective(g)
    loss_axes = 0
    for fig in figures:
        for ax in fig.axes:
            if "loss" not in ax.get_ylabel():
                continue
            loss_axes += 1
            objectives = {
                by_label.get(line.get_label(), "?")
                for line in ax.get_lines()
                if not line.get_label().startswith("_")
            }
            assert len(objectives) == 1, (ax.get_title(), objectives)
    assert loss_axes == 4  # one panel per objective, in the study section and the generic figures
    assert "not on one scale" in build_report(tmp_path)["markdown"].read_text()


# --- every study of conf/experiment ----------------------------------------------------------


def _diagnostics(job: Path) -> None:
    """Every diagnostic file any study reads, with plausible numbers."""
    diag = job / "artifacts" / "diagnostics"
    _csv(diag / "grad_norms.csv", [{"step": s, "epoch": 1, "a": 0.1, "b": 1.0} for s in (0, 10)])
    _activation_json(job, {"init": (0, [0.0]), "best": (1, [0.25]), "end": (2, [0.25])})
    _csv(
        diag / "neuron_grads.csv",
        [{"step": s, "layer": "l1", "unit": u, "grad_norm": 0.0} for s in (0, 1) for u in (0, 1)],
    )


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_gets_its_section(name, tmp_path):
    jobs = sweep_jobs([f"experiment={name}"])
    seeds = sorted({o for job in jobs for o in job if o.startswith("seed=")})[:2]
    firsts = []
    for job in jobs:
        rest = [o for o in job if not o.startswith("seed=")]
        if rest not in firsts:
            firsts.append(rest)
    root = tmp_path / "sweep"
    for i, rest in enumerate(firsts[:2]):
        for s, seed in enumerate(seeds):
            overrides = [f"experiment={name}", *rest, seed]
            cfg = compose_config(overrides, output_dir=tmp_path / "o")
            config = OmegaConf.to_container(cfg, resolve=False)
            job = fake_job(root, 10 * i + s, overrides, 0.9 - i / 10 + s / 100, config)
            _diagnostics(job)
    paths = build_report(root)
    md = paths["markdown"].read_text()
    section = md.split("## Best configuration")[0].split(f"## Study: {name}")[1]
    question = OmegaConf.to_container(cfg)["report"]["question"]
    assert " ".join(question.split()) in section
    assert "**Answer (from the data).**" in section and "%" in section
    assert "](report_files/study_" in section  # at least one study figure
    # what the lab notebook reads: the same question, answer and figures
    record = json.loads((root / "study.json").read_text())
    assert (record["study"], record["question"]) == (name, " ".join(question.split()))
    assert record["answer"] and record["answer"][0] in section
    assert all((root / f["file"]).is_file() for f in record["figures"]) and record["figures"]


def test_optimizers_share_one_lr_and_the_tuned_preset_keeps_each_default(tmp_path):
    common = compose_config(["experiment=optimizers", "optimizer=sgd"], output_dir=tmp_path)
    tuned = compose_config(["experiment=optimizers_tuned", "optimizer=sgd"], output_dir=tmp_path)
    assert (common.optimizer.lr, tuned.optimizer.lr) == (0.001, 0.1)


def test_xavier_is_glorot_with_gain_one_and_xavier_gain_scales_it():
    import torch
    from torch import nn

    from mnistlab.models.common import init_weights

    layer = nn.Linear(300, 100)
    bound = math.sqrt(6 / 400)  # Glorot uniform, gain 1
    init_weights(layer, "xavier", "relu")
    assert bound * 0.95 < float(layer.weight.abs().max()) <= bound
    init_weights(layer, "xavier_gain", "relu")
    assert float(layer.weight.abs().max()) > bound * 1.3  # x sqrt(2) for ReLU
    assert torch.all(layer.bias == 0)


@pytest.mark.parametrize(("accuracies", "zoomed"), [((0.10, 0.95), False), ((0.97, 0.98), True)])
def test_metric_bars_say_zoomed_only_when_the_axis_does_not_start_at_0(
    tmp_path, accuracies, zoomed
):
    for i, acc in enumerate(accuracies):
        for seed in (1, 2):
            fake_job(tmp_path, 2 * i + seed, [f"model.activation=a{i}", f"seed={seed}"], acc)
    ax = metric_bars(analyze(collect(tmp_path), "val/acc_best")).axes[0]
    assert bool(ax.get_xlim()[0] > 0) is zoomed
    assert ("axis zoomed" in ax.get_xlabel()) is zoomed
