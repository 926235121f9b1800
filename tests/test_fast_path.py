"""Correctness of the fast path: in-memory batches, seeded batch augmentation, cheap train
metrics, test-time flip, the accuracy presets, and the benchmark's --quick mode (not speed)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CONF, compose_config, requires_data
from hydra import compose, initialize_config_dir
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mnistlab.classifier_module import ClassifierModule
from mnistlab.data import (
    InMemoryBatches,
    RandomAffine,
    RandomErasing,
    RandomGaussianBlur,
    RandomHorizontalFlip,
)
from mnistlab.data.augment import BatchAugmentation, ElasticDistortion
from mnistlab.errors import ConfigError
from mnistlab.factory import build
from mnistlab.models import MLP


def _indices(batches: InMemoryBatches) -> list[int]:
    """The sample ids of one pass; each fake image holds its own index."""
    return [int(v) for images, labels in batches for v in images.flatten()]


def _loader(n: int, batch_size: int, **kwargs) -> InMemoryBatches:
    ids = torch.arange(n)
    return InMemoryBatches(ids.view(n, 1, 1, 1), ids % 10, batch_size, **kwargs)


@pytest.mark.parametrize("n, batch_size", [(1000, 64), (1000, 1000), (7, 3)])
def test_every_training_index_comes_once_per_epoch(n, batch_size):
    loader = _loader(n, batch_size, shuffle=True, seed=3)
    first, second = _indices(loader), _indices(loader)
    assert sorted(first) == sorted(second) == list(range(n))
    assert len(list(loader)) == len(loader) == -(-n // batch_size)
    if n > batch_size:
        assert first != second  # a new permutation each epoch


def test_labels_travel_with_their_images():
    loader = _loader(500, 32, shuffle=True, seed=1)
    for images, labels in loader:
        assert torch.equal(images.flatten() % 10, labels)


def test_same_seed_same_order_other_seed_other_order():
    assert _indices(_loader(300, 50, shuffle=True, seed=5)) == _indices(
        _loader(300, 50, shuffle=True, seed=5)
    )
    assert _indices(_loader(300, 50, shuffle=True, seed=5)) != _indices(
        _loader(300, 50, shuffle=True, seed=6)
    )


def test_world_size_shards_are_disjoint_and_cover_the_data():
    world = 3
    shards = [
        _indices(_loader(999, 40, shuffle=True, seed=2, rank=r, world_size=world))
        for r in range(world)
    ]
    assert all(len(s) == 333 for s in shards)
    assert sorted(i for s in shards for i in s) == list(range(999))  # disjoint and complete
    # an uneven size is padded like DistributedSampler: equal shard sizes, everything covered
    shards = [
        _indices(_loader(1000, 40, shuffle=True, seed=2, rank=r, world_size=world))
        for r in range(world)
    ]
    assert {len(s) for s in shards} == {334}
    everything = [i for s in shards for i in s]
    assert set(everything) == set(range(1000)) and len(everything) - len(set(everything)) == 2


TRANSFORMS = [
    RandomAffine(degrees=15, translate=0.1, scale=(0.9, 1.1), shear=10, p=0.8),
    ElasticDistortion(alpha=20.0, sigma=3.0, p=0.5),
    RandomErasing(p=0.5),
    RandomHorizontalFlip(p=0.5),
    RandomGaussianBlur(sigma=(0.1, 1.0), p=0.5),
]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: type(t).__name__)
def test_augmentation_parameters_follow_the_seed(transform):
    draw = [transform.sample(64, 28, 28, torch.Generator().manual_seed(11)) for _ in range(2)]
    assert draw[0].keys() == draw[1].keys()
    for key in draw[0]:
        assert torch.equal(draw[0][key], draw[1][key]), key
    other = transform.sample(64, 28, 28, torch.Generator().manual_seed(12))
    assert any(not torch.equal(draw[0][k], other[k]) for k in draw[0])
    # per-sample parameters: not one draw for the whole batch
    assert draw[0]["apply"].any() and (transform.p == 1.0 or not draw[0]["apply"].all())


def test_augmentation_is_reproducible_on_cpu_and_matches_cuda_when_present():
    images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    augment = BatchAugmentation(TRANSFORMS)
    a = augment(images, torch.Generator().manual_seed(4))
    b = augment(images.clone(), torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, images)
    # per sample: the flip alone mirrors exactly the samples its parameters chose
    flip = RandomHorizontalFlip(p=0.5)
    params = flip.sample(32, 28, 28, torch.Generator().manual_seed(9))
    out = flip.apply(images, params)
    for i in range(32):
        assert torch.equal(out[i], images[i].flip(-1) if params["apply"][i] else images[i])
    if torch.cuda.is_available():  # parameters come from the CPU generator, so devices agree
        c = augment(images.cuda(), torch.Generator().manual_seed(4)).cpu()
        torch.testing.assert_close(c, a, atol=1e-4, rtol=0)


def _module(**kwargs) -> ClassifierModule:
    net = MLP(num_classes=10, input_shape=(1, 28, 28), hidden_sizes=[16])
    return ClassifierModule(
        net=net, optimizer=lambda params: torch.optim.SGD(params, lr=0.1), **kwargs
    )


def test_train_metrics_accumulated_per_epoch_equal_torchmetrics_per_step():
    """The cheap accumulation (argmax + loss sum) gives what per-step torchmetrics gave."""
    module = _module()
    g = torch.Generator().manual_seed(0)
    acc, f1 = MulticlassAccuracy(10, average="micro"), MulticlassF1Score(10, average="macro")
    loss_sum, count = 0.0, 0
    for n in (32, 32, 17):
        logits, labels = torch.randn(n, 10, generator=g), torch.randint(0, 10, (n,), generator=g)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        module._accumulate_train(loss, logits, labels)
        acc.update(logits, labels)
        f1.update(logits, labels)
        loss_sum, count = loss_sum + float(loss) * n, count + n
    values = module._train_epoch_values()
    assert set(values) == {
        "train/acc",
        "train/precision_macro",
        "train/recall_macro",
        "train/f1_macro",
        "train/loss",
    }
    assert torch.equal(values["train/acc"], acc.compute())
    assert torch.equal(values["train/f1_macro"], f1.compute())
    assert float(values["train/loss"]) == pytest.approx(loss_sum / count, rel=1e-6)
    assert module._train_epoch_values() == {}  # cleared for the next epoch


def test_tta_flip_averages_image_and_mirror():
    module = _module(tta_flip=True).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = (module(x) + module(x.flip(-1))) / 2
        torch.testing.assert_close(module.eval_logits(x), expected)
        plain = _module().eval()
        assert torch.equal(plain.eval_logits(x), plain(x))


def test_bad_divergence_interval_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"module.divergence_check_every_n_steps=-1 must be"):
        _module(divergence_check_every_n_steps=-1)


def test_tta_flip_is_refused_for_mnist_before_any_data_is_loaded(make_config, tmp_path):
    from mnistlab.factory import build

    cfg = make_config("module.tta_flip=true", f"data.root={tmp_path}", "data.download=false")
    with pytest.raises(
        ConfigError, match=r"module.tta_flip=true does not fit data=mnist: a mirrored image"
    ):
        build(cfg)  # the data root is empty: the check must come first
    build(make_config("data=fashion_mnist", "module.tta_flip=true"))


BEST = {
    "best_mnist_softmax": None,
    "best_mnist_mlp": None,
    "best_mnist_cnn": None,
    "best_fashion_mnist_softmax": None,
    "best_fashion_mnist_mlp": None,
    "best_fashion_mnist_cnn": 250_000,  # the parameter budget for the small cnn
    "best_fashion_mnist_resnet": None,
    "speedrun_mnist": None,
    "speedrun_fashion_mnist": None,
}


@pytest.mark.parametrize("name", sorted(BEST))
def test_recipe_presets_compose_build_and_sweep_seeds(name, tmp_path):
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        seeds = str(
            compose(
                "train", [f"experiment={name}"], return_hydra_config=True
            ).hydra.sweeper.params.seed
        )
    assert len(seeds.split(",")) >= 3
    cfg = compose_config([f"experiment={name}"], output_dir=tmp_path)
    _, module = build(cfg)
    if BEST[name] is not None:
        assert sum(p.numel() for p in module.net.parameters()) <= BEST[name]
    if name.startswith("speedrun"):
        assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
        assert cfg.data.data_on_device and module.channels_last


@requires_data
@pytest.mark.slow
def test_benchmark_quick_mode_writes_every_cell(tmp_path, data_root, monkeypatch):
    from benchmarks import bench

    monkeypatch.setenv("MNISTLAB_DATA_ROOT", str(data_root))
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--repeats", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert set(report["models"]) == {"softmax", "mlp", "lenet"}
    for model, row in report["models"].items():
        for cells in (row, row["eval"]):
            for key in (
                "standard_ips",
                "standard_w0_ips",
                "standard_w2_ips",
                "mnistlab_ips",
                "plain_ips",
            ):
                assert cells[key] > 0, (model, key)
            assert cells["mnistlab_vs_standard"] == pytest.approx(
                cells["mnistlab_ips"] / cells["standard_ips"], rel=1e-3
            )
            assert cells["plain_vs_mnistlab"] == pytest.approx(
                cells["plain_ips"] / cells["mnistlab_ips"], rel=1e-3
            )
        assert row["batch_512"]["lightning_overhead"] == pytest.approx(
            row["batch_512"]["plain_ips"] / row["batch_512"]["mnistlab_ips"] - 1, abs=1e-3
        )
        assert row["batch_512"]["bare_lightning_ips"] > 0
        assert row["batch_512"]["bare_lightning_overhead"] == pytest.approx(
            row["batch_512"]["plain_ips"] / row["batch_512"]["bare_lightning_ips"] - 1, abs=1e-3
        )
    assert report["settings"]["quick"] is True and report["machine"]["threads"] == 1
    assert {g["goal"].split(":")[0] for g in report["goals"]} >= {"mlp"}


def test_train_loss_is_the_data_loss_without_the_l1_term(tmp_path):
    """With a large L1 coefficient, train/loss is still the plain cross-entropy of the batch
    (comparable with val/loss); the penalty is logged on its own as train/l1_penalty."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    module = ClassifierModule(
        net=MLP(num_classes=10, input_shape=(1, 28, 28), hidden_sizes=[16]),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.0),  # weights stay as measured
        l1=5.0,
    )
    with torch.no_grad():
        cross_entropy = float(torch.nn.functional.cross_entropy(module(x), y))
        weights = sum(float(p.abs().sum()) for p in module.net.parameters() if p.ndim >= 2)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=0)  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=8))
    logged = trainer.callback_metrics
    assert float(logged["train/loss"]) == pytest.approx(cross_entropy, rel=1e-5)
    assert float(logged["train/l1_penalty"]) == pytest.approx(5.0 * weights, rel=1e-5)
    assert float(logged["train/l1_penalty"]) > 100 * cross_entropy  # it would have dominated
