"""One real training run (small CNN, real MNIST, W&B offline + TensorBoard), then what users do with it:
read its artifacts, evaluate its checkpoint, classify image files, look at Grad-CAM."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, requires_data
from PIL import Image

from mnistlab import predict
from mnistlab.artifacts import names, registry
from mnistlab.artifacts.gradcam import attribution_maps, resolve_layer
from mnistlab.checkpoint import load_model
from mnistlab.eval import evaluate

pytestmark = [pytest.mark.slow, requires_data]

# every PNG of the default run's test-set and training artifacts
PNGS = tuple(
    f.removesuffix(".png")
    for kind in ("test", "training")
    for name in names(kind)
    for f in registry()[name].files
    if f.endswith(".png")
)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root):
    """~150 steps of a small CNN on 5,000 real training images; full 10,000-image test set."""
    out = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    cfg = compose_config(
        [
            f"data.root={data_root}",
            "model=cnn",
            "model.channels=[8,16]",
            "model.fc_sizes=[32]",
            "data.train_size=5000",
            "data.batch_size=64",
            "trainer.max_epochs=2",
            "scheduler=none",
            "logger=many",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            f"callbacks.data_overview.cache_dir={out / 'cache'}",
        ],
        out,
    )
    from mnistlab.run import train

    try:
        metrics = train(cfg)
    finally:
        if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
            sys.modules["wandb"].finish()
        mp.undo()
    return out, metrics


def test_run_directory_holds_every_artifact_as_a_real_picture(run) -> None:
    out, _ = run
    for name in PNGS:
        with Image.open(out / "artifacts" / f"{name}.png") as img:
            img.load()
            pixels = np.asarray(img.convert("L"))
        assert img.format == "PNG" and min(img.size) >= 150, name
        assert pixels.std() > 10, f"{name}.png looks empty"


def test_confusion_matrix_and_tables_agree_with_the_logged_test_metrics(run) -> None:
    out, metrics = run
    with open(out / "artifacts" / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == [str(d) for d in range(10)]
    cm = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    assert cm.sum() == 10_000
    assert np.trace(cm) / cm.sum() == pytest.approx(metrics["test/acc"], abs=1e-6)
    per_class = json.loads((out / "artifacts" / "per_class.json").read_text())
    f1 = {r["class"]: r["f1"] for r in per_class["classes"]}
    assert per_class["hardest"] == min(f1, key=f1.get) and per_class["easiest"] == max(
        f1, key=f1.get
    )
    assert [r["support"] for r in per_class["classes"]] == cm.sum(axis=1).tolist()
    aucs = json.loads((out / "artifacts" / "roc_auc.json").read_text())
    assert 0.9 < aucs["macro"] <= 1.0 and len(aucs["per_class"]) == 10
    summary = json.loads((out / "artifacts" / "summary.json").read_text())
    calibration = json.loads((out / "artifacts" / "calibration.json").read_text())
    assert (
        summary["test/ece"] == pytest.approx(calibration["ece"]) and 0 <= calibration["ece"] < 0.2
    )
    assert sum(b["count"] for b in calibration["bins"]) == 10_000


def test_wandb_offline_run_files_contain_the_artifact_images(run) -> None:
    out, _ = run
    run_dirs = list((out / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    images = list((run_dirs[0] / "files" / "media" / "images").rglob("*.png"))
    logged = " ".join(p.name for p in images)
    for name in (
        "confusion_matrix",
        "gradcam",
        "roc",
        "calibration",
        "training_curves",
        "data_samples",
    ):
        assert name in logged, f"{name} missing from W&B media: {logged}"
    with Image.open(images[0]) as img:
        assert img.size[0] >= 150


def test_tensorboard_event_file_contains_the_artifact_images(run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    out, _ = run
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={IMAGES: 0})
    events.Reload()
    tags = events.Tags()["images"]
    assert {"artifacts/confusion_matrix", "artifacts/gradcam", "artifacts/misclassified"} <= set(
        tags
    )
    image = events.Images("artifacts/confusion_matrix")[0]
    assert image.width > 800 and image.height > 400


def test_eval_on_the_checkpoint_reproduces_test_acc_exactly(run, tmp_path) -> None:
    out, metrics = run
    evaluated = evaluate(metrics["checkpoint"], out=tmp_path, accelerator="cpu")
    assert evaluated["test/acc"] == metrics["test/acc"]
    assert evaluated["test/f1_macro"] == metrics["test/f1_macro"]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["test/acc"] == json.loads((out / "metrics.json").read_text())["test/acc"]
    # the artifacts are regenerated from the same predictions
    assert (tmp_path / "artifacts" / "confusion_matrix.csv").read_text() == (
        out / "artifacts" / "confusion_matrix.csv"
    ).read_text()
    assert (
        tmp_path / "artifacts" / "training_curves.png"
    ).is_file()  # drawn from the run's history.csv


def test_eval_refuses_an_unknown_override_in_one_line(run, capsys) -> None:
    from mnistlab.eval import main

    _, metrics = run
    assert main([metrics["checkpoint"], "data.rooot=/x", "--no-artifacts"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: override 'data.rooot=/x': the checkpoint's config has no key 'data.rooot'"
    )


@pytest.fixture(scope="module")
def confident_test_images(run):
    """(uint8 image, label) of test images the trained model gets right with >= 95 % confidence."""
    _, metrics = run
    _, datamodule, module = load_model(metrics["checkpoint"])
    datamodule.setup("test")
    images, labels = datamodule.split("test")
    with torch.inference_mode():
        probs = module(datamodule.normalize(images[:200])).softmax(1)
    confidence, preds = probs.max(1)
    good = torch.nonzero((preds == labels[:200]) & (confidence > 0.95)).flatten()[:4]
    assert len(good) == 4
    return [(images[i], int(labels[i])) for i in good], datamodule, module


def test_predict_returns_the_label_of_test_images_written_as_files(
    run, confident_test_images, tmp_path, capsys
) -> None:
    _, metrics = run
    samples, _, _ = confident_test_images
    for k, (image, _) in enumerate(samples):
        Image.fromarray(image[0].numpy()).save(tmp_path / f"{k}_as_is.png")
        # a scan: black ink on white paper, 5x larger, not square, JPEG
        scan = Image.fromarray(255 - image[0].numpy()).resize((150, 140), Image.Resampling.BICUBIC)
        scan.convert("RGB").save(tmp_path / f"{k}_scan.jpg", quality=95)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    predictions, failures = predict.predict_files(metrics["checkpoint"], [tmp_path], top_k=3)
    assert [(p.name, reason) for p, reason in failures] == [
        ("broken.png", failures[0][1])
    ] and "not a readable PNG/JPEG" in failures[0][1]
    labels = {
        f"{k}_{kind}": str(label)
        for k, (_, label) in enumerate(samples)
        for kind in ("as_is", "scan")
    }
    got = {p.path.stem: p.top[0][0] for p in predictions}
    assert got == labels
    assert all(len(p.top) == 3 and p.top[0][1] >= p.top[1][1] >= p.top[2][1] for p in predictions)

    code = predict.main(
        [
            metrics["checkpoint"],
            str(tmp_path / "0_as_is.png"),
            str(tmp_path / "broken.png"),
            "--top-k",
            "2",
        ]
    )
    printed = capsys.readouterr()
    assert code == 1
    assert printed.out.startswith(f"{tmp_path / '0_as_is.png'}: {samples[0][1]} (")
    assert printed.out.count("%") == 2
    assert printed.err.startswith(
        f"error: {tmp_path / 'broken.png'}: not a readable PNG/JPEG image"
    )


def test_predict_refuses_a_top_k_above_the_class_count(run, capsys) -> None:
    _, metrics = run
    assert predict.main([metrics["checkpoint"], "/nonexistent.png", "--top-k", "11"]) == 1
    assert "--top-k 11 must be between 1 and 10" in capsys.readouterr().err


def test_gradcam_of_the_trained_cnn_has_the_image_shape_and_real_values(
    confident_test_images,
) -> None:
    samples, datamodule, module = confident_test_images
    images = torch.stack([img for img, _ in samples])
    targets = torch.tensor([label for _, label in samples])
    name, layer = resolve_layer(module.net, None)
    maps = attribution_maps(module.net, datamodule.normalize(images), targets, layer=layer)
    assert name == "conv.4" and maps.shape == (4, 28, 28)
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    assert (maps.flatten(1).amax(dim=1) > 0).all()  # every map has some positive evidence
    assert (maps.flatten(1).std(dim=1) > 0).all()  # and it is not flat


def png_declaring(path, width: int, height: int) -> None:
    """A tiny PNG whose header declares ``width`` x ``height`` (a decompression bomb's shape)."""
    import struct
    import zlib

    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_predict_refuses_a_bomb_and_classifies_the_good_file_beside_it(
    run, confident_test_images, tmp_path, capsys
) -> None:
    _, metrics = run
    samples, _, _ = confident_test_images
    Image.fromarray(samples[0][0][0].numpy()).save(tmp_path / "good.png")
    png_declaring(tmp_path / "bomb.png", 20_000, 20_000)  # 400 MP in ~70 bytes
    png_declaring(tmp_path / "huge.png", 8_000, 6_000)  # 48 MP: under PIL's cap, over ours
    code = predict.main(
        [metrics["checkpoint"], *(str(tmp_path / n) for n in ("good.png", "bomb.png", "huge.png"))]
    )
    printed = capsys.readouterr()
    assert code == 1
    assert printed.out.startswith(f"{tmp_path / 'good.png'}: {samples[0][1]} (")
    errors = printed.err.strip().splitlines()
    assert errors[0].startswith(f"error: {tmp_path / 'bomb.png'}: refused as a decompression bomb")
    assert errors[1] == (
        f"error: {tmp_path / 'huge.png'}: image is 8000x6000 pixels, more than the 40,000,000 "
        "this lab decodes; scale it down first"
    )
    assert "Traceback" not in printed.err


def test_a_truncated_or_unsafe_checkpoint_gets_one_honest_line(run, tmp_path) -> None:
    import argparse

    from mnistlab.checkpoint import read_checkpoint
    from mnistlab.errors import ConfigError

    _, metrics = run
    data = Path(metrics["checkpoint"]).read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as info:
        read_checkpoint(truncated)
    message = str(info.value)
    assert message.startswith(
        f"checkpoint {truncated} is truncated, damaged or not a PyTorch checkpoint ("
    )
    assert "\n" not in message and "weights_only set to False" not in message
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "mnistlab_config": argparse.Namespace(a=1)}, unsafe)
    with pytest.raises(ConfigError, match=r"holds a Python object \(argparse.Namespace\)"):
        read_checkpoint(unsafe)
