"""Diagnostics callbacks: each measurement gives the known answer on a hand-built model."""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from conftest import requires_data
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mnistlab.artifacts.activation_stats import activation_statistics
from mnistlab.artifacts.grad_norms import GradientNorms, layer_grad_norms
from mnistlab.artifacts.latency import measure_latency
from mnistlab.artifacts.neuron_grads import NeuronGradientTrace, unit_grad_norms
from mnistlab.artifacts.trained_models import by_name, trained_models
from mnistlab.artifacts.tsne import embed_features
from mnistlab.artifacts.weight_histograms import WeightHistograms, weight_statistics
from mnistlab.classifier_module import ClassifierModule
from mnistlab.models import MLP


def linear(inputs: int, outputs: int, weight: float, bias: list[float] | float) -> nn.Linear:
    layer = nn.Linear(inputs, outputs)
    with torch.no_grad():
        layer.weight.fill_(weight)
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32).expand(outputs))
    return layer


def test_relu_whose_inputs_are_all_negative_is_100_percent_dead():
    model = nn.Sequential(linear(4, 3, 0.0, -1.0), nn.ReLU())
    (stats,) = activation_statistics(model, torch.randn(64, 4))
    assert (stats.kind, stats.units) == ("relu", 3)
    assert stats.dead_fraction == 1.0 and stats.negative_fraction == 1.0
    assert stats.saturated_fraction is None


def test_dead_fraction_counts_units_dead_on_every_input():
    # unit 0: bias -1 and zero weights -> always off; unit 1: bias +1 -> always on
    model = nn.Sequential(
        linear(4, 2, 0.0, [-1.0, 1.0]), nn.ReLU(), linear(2, 2, 1.0, 0.0), nn.ReLU()
    )
    first, second = activation_statistics(model, torch.randn(64, 4))
    assert first.dead_fraction == 0.5
    assert second.dead_fraction == 0.0  # both units see +1 from the live unit


def test_conv_units_are_channels():
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor([-1.0, -1.0, -1.0, 2.0]))
    (stats,) = activation_statistics(nn.Sequential(conv, nn.ReLU()), torch.randn(8, 1, 6, 6))
    assert stats.units == 4 and stats.dead_fraction == 0.75


@pytest.mark.parametrize(
    ("activation", "bias", "expected"),
    [
        (nn.Tanh(), 10.0, 1.0),
        (nn.Tanh(), 0.0, 0.0),
        (nn.Sigmoid(), -10.0, 1.0),
        (nn.Sigmoid(), 0.0, 0.0),
    ],
)
def test_saturated_fraction_of_tanh_and_sigmoid(activation, bias, expected):
    (stats,) = activation_statistics(
        nn.Sequential(linear(4, 5, 0.0, bias), activation), torch.randn(32, 4)
    )
    assert stats.saturated_fraction == expected
    assert stats.dead_fraction is None


def test_statistics_run_in_eval_mode_and_restore_training_mode():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.99), nn.ReLU())
    model.train()
    activation_statistics(model, torch.randn(16, 4))
    assert model.training


def test_layer_grad_norms_on_a_known_gradient():
    layer = nn.Linear(3, 2)
    layer(torch.ones(1, 3)).sum().backward()  # dL/dW = ones(2, 3)
    assert layer_grad_norms(nn.Sequential(layer)) == {"0": pytest.approx(math.sqrt(6))}


def test_zero_initialized_hidden_units_have_identical_gradients():
    """Zero init: every hidden unit of a layer gets the same gradient, step after step (symmetry)."""
    torch.manual_seed(0)
    model = MLP(10, (1, 4, 4), hidden_sizes=(6, 5), activation="sigmoid", init="zeros")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(32, 1, 4, 4), torch.randint(0, 10, (32,))
    hidden = model.hidden_layers()[1][0]  # second hidden Linear
    for step in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        grads = hidden.weight.grad
        assert torch.allclose(grads, grads[:1].expand_as(grads))  # all rows equal
        norms = unit_grad_norms(hidden)
        assert torch.allclose(norms, norms[0].expand_as(norms))
        if step > 0:  # the head has learned something: the gradient is no longer zero
            assert norms[0] > 0
        optimizer.step()


def _fit(module: L.LightningModule, callbacks: list[L.Callback], tmp_path, steps: int = 6) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 4, 4), torch.randint(0, 10, (64,)))
    trainer = L.Trainer(
        max_steps=steps,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader(data, batch_size=8))


def _module(init: str, activation: str = "sigmoid") -> ClassifierModule:
    net = MLP(10, (1, 4, 4), hidden_sizes=(6, 5), activation=activation, init=init)
    return ClassifierModule(net, optimizer=lambda params: torch.optim.SGD(params, lr=0.5))


@pytest.mark.parametrize(("init", "identical"), [("zeros", True), ("kaiming", False)])
def test_neuron_trace_callback_reports_the_symmetry_of_zero_init(tmp_path, init, identical):
    _fit(_module(init), [NeuronGradientTrace(num_steps=5, dirpath=str(tmp_path))], tmp_path)
    summary = json.loads((tmp_path / "neuron_grads.json").read_text())
    assert summary["steps"] == 5
    second_hidden = summary["layers"]["body.2.0"]
    assert second_hidden["identical_gradients"] is identical
    assert second_hidden["units_traced"] == 5
    with Image.open(tmp_path / "neuron_grads.png") as image:
        assert image.size[0] > 300


def test_grad_norm_callback_samples_every_n_steps_and_shows_vanishing_gradients(tmp_path):
    torch.manual_seed(0)
    net = MLP(10, (1, 4, 4), hidden_sizes=(16,) * 8, activation="sigmoid")
    module = ClassifierModule(net, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    _fit(module, [GradientNorms(every_n_steps=2, dirpath=str(tmp_path))], tmp_path, steps=6)
    rows = (tmp_path / "grad_norms.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,body.1.0,") and len(rows) == 1 + 3  # steps 0, 2, 4
    summary = json.loads((tmp_path / "grad_norms.json").read_text())
    assert (
        summary["first_to_last_ratio"] < 0.01
    )  # 8 sigmoid layers: the first gets < 1% of the head's norm


def test_weight_statistics_known_values():
    model = nn.Sequential(linear(4, 2, 0.5, 0.0), linear(2, 2, 0.0, 0.0))
    stats = weight_statistics(model)
    assert (
        stats["0"]["mean"] == 0.5
        and stats["0"]["std"] == 0.0
        and stats["0"]["near_zero_fraction"] == 0.0
    )
    assert stats["1"]["near_zero_fraction"] == 1.0 and stats["1"]["numel"] == 4


class Sleeper(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return x


def test_latency_of_a_model_that_sleeps_20_ms():
    times = measure_latency(Sleeper(), torch.zeros(4, 3), repeats=5, warmup=1)
    assert len(times) == 5
    assert 0.019 < times.mean() < 0.06


def test_tsne_separates_two_distant_clusters():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (60, 20)), rng.normal(50, 1, (60, 20))])
    xy, kl = embed_features(features, perplexity=10, seed=0)
    from sklearn.metrics import silhouette_score

    assert xy.shape == (120, 2) and kl >= 0
    assert silhouette_score(xy, [0] * 60 + [1] * 60) > 0.8


def test_tsne_refuses_nan_features():
    with pytest.raises(ValueError, match="NaN"):
        embed_features(np.full((20, 3), np.nan))


@pytest.mark.slow
@requires_data
def test_every_diagnostic_writes_its_files_in_a_real_run(make_config, tmp_path, data_root):
    from mnistlab.run import train

    cfg = make_config(
        "callbacks=diagnostics",
        "debug=fast",
        "data.train_size=2000",
        f"data.root={data_root}",
        "callbacks.tsne.num_samples=300",
        "callbacks.latency.repeats=3",
        "logger=none",
        "callbacks.grad_norms.every_n_steps=2",
    )
    train(cfg)
    out = tmp_path / "artifacts" / "diagnostics"
    for name in (
        "grad_norms",
        "activation_stats",
        "activation_hist",
        "weight_hist",
        "neuron_grads",
        "tsne",
        "latency",
    ):
        with Image.open(out / f"{name}.png") as image:
            assert image.size[0] > 300 and image.size[1] > 200
    stats = json.loads((out / "activation_stats.json").read_text())
    # debug=fast keeps no checkpoint: the test ran on the end weights, the only trained model
    assert (stats["tested"], stats["end"]["label"], "best" in stats) == (
        "end",
        "end (epoch 1)",
        False,
    )
    assert [layer["kind"] for layer in stats["end"]["layers"]] == [
        "relu",
        "relu",
    ]  # 2 hidden layers
    assert 0.0 <= stats["end"]["layers"][0]["dead_fraction"] <= 1.0
    latency = json.loads((out / "latency.json").read_text())
    assert [r["batch_size"] for r in latency["results"]] == [1, 64, 1000]
    assert (
        latency["results"][0]["sample_ms_mean"] > latency["results"][2]["sample_ms_mean"]
    )  # batching pays
    assert len((out / "tsne.csv").read_text().splitlines()) == 301
    assert (
        len((out / "weight_stats.csv").read_text().splitlines()) == 1 + 2 * 3
    )  # init and end, 3 layers


# --- one model per number: the tested checkpoint and the end of training ----------------------


def _after_fit(current_epoch: int, best_path: str = "") -> SimpleNamespace:
    """What trained_models reads from a Trainer after fitting."""
    return SimpleNamespace(
        current_epoch=current_epoch, checkpoint_callback=SimpleNamespace(best_model_path=best_path)
    )


def test_trained_models_are_the_best_checkpoint_and_the_end(tmp_path):
    module = _module("kaiming")
    saved = {f"net.{k}": v.clone() for k, v in module.net.state_dict().items()}
    torch.save({"state_dict": saved, "epoch": 2}, tmp_path / "best.ckpt")  # Lightning: 0-based
    with torch.no_grad():
        for p in module.net.parameters():
            p.add_(1.0)  # training went on after the checkpoint
    (best, best_net), (end, end_net) = trained_models(
        _after_fit(5, str(tmp_path / "best.ckpt")), module
    )
    assert (best.label, best.tested, end.label, end.tested) == (
        "best (epoch 3)", True, "end (epoch 5)", False
    )  # fmt: skip
    assert end_net is module.net
    for name, value in best_net.state_dict().items():
        assert torch.equal(value, saved[f"net.{name}"])
    assert by_name([(best, {"v": 1}), (end, {"v": 2})]) == {
        "tested": "best",
        "best": {"epoch": 3, "label": "best (epoch 3)", "tested": True, "v": 1},
        "end": {"epoch": 5, "label": "end (epoch 5)", "tested": False, "v": 2},
    }


def test_a_best_checkpoint_at_the_last_epoch_is_one_model_and_no_checkpoint_means_the_end(
    tmp_path,
):
    module = _module("kaiming")
    torch.save({"state_dict": {}, "epoch": 4}, tmp_path / "best.ckpt")
    ((state, net),) = trained_models(_after_fit(5, str(tmp_path / "best.ckpt")), module)
    assert (state.label, state.tested, net is module.net) == ("best = end (epoch 5)", True, True)
    assert by_name([(state, {})])["end"]["label"] == "best = end (epoch 5)"
    ((state, _),) = trained_models(_after_fit(2), module)
    assert (state.label, state.tested) == ("end (epoch 2)", True)  # the test used these weights


def test_weight_histograms_keep_the_initial_weights_of_small_layers():
    """A small layer's init sample was a view of its weights, so it showed the trained ones."""
    net = nn.Sequential(linear(4, 3, 0.5, 0.0))
    callback = WeightHistograms()
    trainer = SimpleNamespace(sanity_checking=False, fast_dev_run=False, is_global_zero=True)
    callback.on_train_start(trainer, net)
    with torch.no_grad():
        net[0].weight.fill_(2.0)  # an optimizer step updates in place
    assert callback.init["0"].tolist() == [0.5] * 12


@pytest.mark.slow
@requires_data
def test_epoch_numbers_and_the_tested_model_agree_across_files(make_config, tmp_path, data_root):
    """A real run whose best epoch is not its last (Adam at lr 0.1 kills ReLU units): every file
    counts epochs 1..n (0 = init) and the diagnostics describe the tested checkpoint and the end."""
    import csv

    from mnistlab.run import train

    cfg = make_config(
        "callbacks=[model_checkpoint,activation_stats,tsne,weight_histograms]",
        f"data.root={data_root}",
        "optimizer.lr=0.1",
        "scheduler=none",
        "seed=2",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=20",
        "trainer.limit_val_batches=4",
        "trainer.limit_test_batches=4",
        "trainer.enable_model_summary=false",
        "callbacks.tsne.num_samples=200",
        "logger=none",
    )
    metrics = train(cfg)
    with open(tmp_path / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in history] == [1, 2, 3] and metrics["epochs"] == 3
    val = [float(r["val/acc"]) for r in history]
    best = metrics["best_epoch"]
    assert best == 1 + val.index(max(val)) and best < 3  # the case this test is about
    checkpoint = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["epoch"] + 1 == best  # Lightning's 0-based epoch, plus one

    diag = tmp_path / "artifacts" / "diagnostics"
    with open(diag / "activation_stats.csv") as f:
        series = list(csv.DictReader(f))
    assert sorted({int(r["epoch"]) for r in series}) == [0, 1, 2, 3]
    stats = json.loads((diag / "activation_stats.json").read_text())
    assert stats["tested"] == "best"
    assert [(stats[p]["epoch"], stats[p]["label"]) for p in ("init", "best", "end")] == [
        (0, "init (epoch 0)"), (best, f"best (epoch {best})"), (3, "end (epoch 3)")
    ]  # fmt: skip
    for phase in ("init", "best", "end"):  # the checkpoint's weights are the epoch's weights
        at_epoch = [
            float(r["dead_fraction"]) for r in series if int(r["epoch"]) == stats[phase]["epoch"]
        ]
        assert [layer["dead_fraction"] for layer in stats[phase]["layers"]] == at_epoch

    tsne = json.loads((diag / "tsne.json").read_text())
    assert (tsne["best"]["label"], tsne["end"]["label"]) == (
        f"best (epoch {best})",
        "end (epoch 3)",
    )
    with open(diag / "tsne.csv") as f:
        models = {(r["model"], int(r["epoch"])) for r in csv.DictReader(f)}
    assert models == {("best", best), ("end", 3)}
    with open(diag / "weight_stats.csv") as f:
        snapshots = {(r["snapshot"], int(r["epoch"])) for r in csv.DictReader(f)}
    assert snapshots == {("init", 0), ("best", best), ("end", 3)}
