"""Artifact metrics and figures on inputs with known answers; configs that switch artifacts.

No training here except one fast_dev_run; the trained-model checks live in test_eval_predict.py.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config, requires_data
from PIL import Image

from mnistlab.artifacts import names
from mnistlab.artifacts.calibration import calibration_errors, reliability_bins
from mnistlab.artifacts.confusion_matrix import (
    ConfusionMatrixArtifact,
    confusion_matrix,
    most_confused_pairs,
    read_confusion_csv,
)
from mnistlab.artifacts.evaluation import Evaluation, Predictions
from mnistlab.artifacts.figures import DPI, save_figure
from mnistlab.artifacts.galleries import MisclassifiedGallery, PredictionCards
from mnistlab.artifacts.gradcam import GradCAMArtifact, attribution_maps, resolve_layer
from mnistlab.artifacts.per_class import hardest_and_easiest, per_class_metrics
from mnistlab.artifacts.roc import plot_roc, roc_auc, roc_curves
from mnistlab.artifacts.training_curves import generalization_gap, plot_training_curves
from mnistlab.data.loader import InMemoryBatches
from mnistlab.errors import ConfigError
from mnistlab.image_input import ImageInputError, load_image, to_dataset_image
from mnistlab.models import CNN, MLP

ARTIFACT_CALLBACKS = ("evaluation", *names("test"), *names("training"))
NAMES = ["cat", "dog", "bird"]
# true:  0 0 1 1 2 2 2
# pred:  0 1 1 1 2 0 2
LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 2])
PREDS = torch.tensor([0, 1, 1, 1, 2, 0, 2])


def _predictions(
    logits: torch.Tensor, labels: torch.Tensor, images: torch.Tensor | None = None
) -> Predictions:
    names = [str(i) for i in range(logits.shape[1])]
    return Predictions(logits, labels, torch.arange(len(labels)), names, images, "synthetic")


# --- confusion matrix and per-class metrics ---------------------------------------------------
def test_confusion_matrix_equals_the_hand_count() -> None:
    cm = confusion_matrix(PREDS, LABELS, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    pairs = most_confused_pairs(cm, NAMES, k=5)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("cat", "dog", 1),
        ("bird", "cat", 1),
    ]
    assert pairs[1]["rate"] == pytest.approx(1 / 3, abs=1e-4)


def test_confusion_callback_writes_the_matrix_as_csv(tmp_path) -> None:
    logits = F.one_hot(PREDS, 3).float() * 5
    result = Predictions(logits, LABELS, torch.arange(7), NAMES)
    ConfusionMatrixArtifact(tmp_path).write(result, pl_module=None)
    names, cm = read_confusion_csv(tmp_path / "confusion_matrix.csv")
    assert names == NAMES and cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert (tmp_path / "confused_pairs.csv").read_text().splitlines()[1] == "cat,dog,1,0.5"
    with Image.open(tmp_path / "confusion_matrix.png") as img:
        assert img.width > 800 and img.height > 400


def test_per_class_metrics_by_hand() -> None:
    rows = {r["class"]: r for r in per_class_metrics(PREDS, LABELS, NAMES)}
    # cat: predicted 0 twice (1 right) -> precision 1/2; 2 cats, 1 found -> recall 1/2
    assert rows["cat"]["precision"] == pytest.approx(0.5) and rows["cat"][
        "recall"
    ] == pytest.approx(0.5)
    # dog: predicted 3 times, 2 right; both dogs found
    assert rows["dog"]["precision"] == pytest.approx(2 / 3) and rows["dog"][
        "recall"
    ] == pytest.approx(1.0)
    assert rows["dog"]["f1"] == pytest.approx(0.8)
    assert rows["bird"]["support"] == 3 and rows["bird"]["accuracy"] == pytest.approx(2 / 3)
    hard, easy = hardest_and_easiest(list(rows.values()))
    assert (hard["class"], easy["class"]) == ("cat", "dog")


# --- ROC / AUC ---------------------------------------------------------------------------------
def test_perfect_classifier_has_auc_one_and_constant_one_half() -> None:
    labels = torch.arange(300) % 3
    perfect = roc_auc(F.one_hot(labels, 3).float() * 0.9 + 0.05, labels, NAMES)
    assert all(v == pytest.approx(1.0) for v in perfect["per_class"].values())
    assert perfect["macro"] == pytest.approx(1.0) and perfect["micro"] == pytest.approx(1.0)
    constant = roc_auc(torch.full((300, 3), 1 / 3), labels, NAMES)
    assert all(v == pytest.approx(0.5) for v in constant["per_class"].values())
    assert constant["macro"] == pytest.approx(0.5) and constant["micro"] == pytest.approx(0.5)


def test_auc_of_an_absent_class_is_nan_and_left_out_of_the_macro() -> None:
    labels = torch.tensor([0, 1, 0, 1])
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.3, 0.6, 0.1]])
    aucs = roc_auc(probs, labels, NAMES)
    assert math.isnan(aucs["per_class"]["bird"])
    assert aucs["macro"] == pytest.approx(1.0)


def test_roc_figure_png_has_the_figure_size(tmp_path) -> None:
    labels = torch.arange(3000) % 3
    probs = (
        F.one_hot(labels, 3).float()
        + torch.rand(3000, 3, generator=torch.Generator().manual_seed(0))
    ).softmax(1)
    fig = plot_roc(roc_curves(probs, labels, 3), roc_auc(probs, labels, NAMES), NAMES)
    expected = tuple(round(v * DPI) for v in fig.get_size_inches())
    with Image.open(save_figure(fig, tmp_path / "roc.png")) as img:
        assert img.size == expected


# --- calibration -------------------------------------------------------------------------------
def _calibrated(n: int, num_classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 confidence c uniform in [0.2, 1); the label equals the top class with probability c."""
    g = torch.Generator().manual_seed(seed)
    confidence = 0.2 + 0.8 * torch.rand(n, generator=g)
    top = torch.randint(num_classes, (n,), generator=g)
    probs = ((1 - confidence) / (num_classes - 1)).unsqueeze(1).repeat(1, num_classes)
    probs[torch.arange(n), top] = confidence
    correct = torch.rand(n, generator=g) < confidence
    other = (top + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
    return probs, torch.where(correct, top, other)


def test_ece_of_a_perfectly_calibrated_set_is_about_zero() -> None:
    probs, labels = _calibrated(200_000)
    assert calibration_errors(probs, labels)["ece"] < 0.005
    for b in reliability_bins(probs, labels, n_bins=10):
        if b["count"] > 1000:
            assert b["accuracy"] == pytest.approx(b["confidence"], abs=0.01)


def test_ece_of_an_overconfident_model_is_the_gap() -> None:
    labels = torch.arange(1000) % 2
    probs = torch.tensor([[0.99, 0.01]]).repeat(
        1000, 1
    )  # always class 0 at 99 %, right half the time
    errors = calibration_errors(probs, labels)
    assert errors["ece"] == pytest.approx(0.49, abs=1e-4) and errors["mce"] == pytest.approx(
        0.49, abs=1e-4
    )


# --- training curves ---------------------------------------------------------------------------
def test_generalization_gap_and_curve_figure(tmp_path) -> None:
    rows = [
        {"epoch": 1, "train/acc": 0.9, "val/acc": 0.85, "train/loss": 0.3, "val/loss": 0.4},
        {"epoch": 2, "train/acc": 0.97, "val/acc": 0.9, "train/loss": 0.1, "val/loss": 0.35},
    ]
    gap = generalization_gap(rows)
    assert gap["acc"] == pytest.approx([0.05, 0.07]) and gap["loss"] == pytest.approx([0.1, 0.25])
    with Image.open(save_figure(plot_training_curves(rows), tmp_path / "c.png")) as img:
        assert img.size == (1300, 390)


# --- Grad-CAM / attribution --------------------------------------------------------------------
def test_default_gradcam_layer_is_the_last_conv_and_a_wrong_name_lists_the_choices() -> None:
    net = CNN(10, (1, 28, 28), channels=[4, 8])
    name, layer = resolve_layer(net, None)
    assert layer is net.conv_layers()[-1] and name == "conv.4"
    with pytest.raises(ConfigError, match=r"layer='conv\.9'.*conv\.0, conv\.4"):
        resolve_layer(net, "conv.9")
    assert resolve_layer(MLP(10, (1, 28, 28)), None) is None


def test_model_without_conv_layers_gets_integrated_gradients_and_says_so(tmp_path) -> None:
    torch.manual_seed(0)
    net = MLP(10, (1, 28, 28), hidden_sizes=[16]).eval()
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    inputs = images.float() / 255
    maps = attribution_maps(net, inputs, labels, layer=None, method="integrated_gradients")
    assert (
        maps.shape == (20, 28, 28)
        and torch.isfinite(maps).all()
        and (maps.flatten(1).amax(1) > 0).all()
    )

    module = SimpleNamespace(
        net=net, device=torch.device("cpu"), trainer=SimpleNamespace(datamodule=None)
    )
    artifact = GradCAMArtifact(tmp_path, per_class=1)
    with torch.no_grad():
        logits = net(inputs)
    artifact.write(_predictions(logits, labels, images), module)
    assert "Integrated gradients" in artifact.title and "has no conv layer" in artifact.title
    with Image.open(tmp_path / "gradcam.png") as img:
        assert img.width > 200 and np.asarray(img.convert("L")).std() > 10


def test_gradcam_with_a_bad_fallback_is_refused() -> None:
    with pytest.raises(ConfigError, match="fallback='smoothgrad'.*integrated_gradients, saliency"):
        GradCAMArtifact("/tmp/unused", fallback="smoothgrad")


# --- galleries ---------------------------------------------------------------------------------
def test_galleries_show_the_most_confident_mistakes_first(tmp_path) -> None:
    labels = torch.tensor([0, 1, 2, 0, 1])
    probs = torch.tensor(
        [[0.1, 0.9, 0.0], [0.0, 1.0, 0.0], [0.6, 0.0, 0.4], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]]
    )
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    from mnistlab.artifacts.galleries import most_confident_mistakes

    assert most_confident_mistakes(probs, labels, limit=10) == [0, 2, 4]
    result = _predictions(probs.log(), labels, images)
    MisclassifiedGallery(tmp_path, columns=2).write(result, None)
    PredictionCards(tmp_path, num_cards=3, top_k=2, columns=3).write(result, None)
    # canvases are drawn at 3 output pixels per canvas pixel: sizes follow from the layout
    with Image.open(tmp_path / "misclassified.png") as img:
        assert img.size == (3 * (2 * 32 + 4 + 1), 3 * (10 + 2 * 42 + 4))
    with Image.open(tmp_path / "prediction_cards.png") as img:
        assert img.size == (3 * (3 * (80 + 4) + 4 + 1), 3 * (7 + 28 + 6 + 4 + 4))


# --- the collector: DDP shards back in test-split order ---------------------------------------
def test_shards_of_two_ranks_are_put_back_in_order_without_padding_duplicates() -> None:
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2])  # 7 images: ranks get 4 each, one padded repeat
    images = torch.arange(7, dtype=torch.uint8).view(7, 1, 1, 1).expand(7, 1, 2, 2).contiguous()
    gathered_pos, gathered_labels = [], []
    for rank in (0, 1):
        order = InMemoryBatches(images, labels, 2, world_size=2, rank=rank).indices(0)
        gathered_pos.append(order)
        gathered_labels.append(labels[order])
    datamodule = SimpleNamespace(split=lambda name: (images, labels), name="toy", class_names=None)
    trainer = SimpleNamespace(datamodule=datamodule)
    module = SimpleNamespace(class_names=[str(i) for i in range(10)])
    positions = torch.cat(gathered_pos)
    logits = F.one_hot(torch.cat(gathered_labels), 10).float()
    result = Evaluation("/tmp/unused")._predictions(
        trainer, module, logits, torch.cat(gathered_labels), positions
    )
    assert result.indices.tolist() == list(range(7))
    assert result.labels.tolist() == labels.tolist() and result.preds.tolist() == labels.tolist()
    assert result.images[:, 0, 0, 0].tolist() == list(range(7))


# --- configs -----------------------------------------------------------------------------------
def test_default_callbacks_include_every_artifact_and_each_can_be_switched_off(tmp_path) -> None:
    cfg = compose_config([], tmp_path)
    assert set(ARTIFACT_CALLBACKS) <= set(cfg.callbacks)
    assert all(cfg.callbacks[n].dirpath == f"{tmp_path}/artifacts" for n in ARTIFACT_CALLBACKS)
    for name in ARTIFACT_CALLBACKS:
        off = compose_config([f"~callbacks.{name}"], tmp_path)
        assert name not in off.callbacks and set(ARTIFACT_CALLBACKS) - {name} <= set(off.callbacks)


def test_artifact_without_the_collector_fails_before_training_with_the_fix() -> None:
    trainer = SimpleNamespace(callbacks=[ConfusionMatrixArtifact("/tmp/unused")])
    with pytest.raises(ConfigError, match="callbacks.confusion_matrix .*callbacks.evaluation.*off"):
        trainer.callbacks[0].setup(trainer, None, "fit")


def test_writers_ride_on_the_collector_not_on_the_trainer_and_their_checks_still_run(
    tmp_path,
) -> None:
    from hydra.utils import instantiate

    from mnistlab.artifacts.evaluation import TestSetArtifact, attach_writers

    cfg = compose_config(["model=cnn", "callbacks.gradcam.layer=no_such_layer"], tmp_path)
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    attached = attach_writers(callbacks)
    collector = next(cb for cb in attached if isinstance(cb, Evaluation))
    # the seven writers leave the per-batch hook loop; nothing else is dropped
    assert not any(isinstance(cb, TestSetArtifact) for cb in attached)
    assert {w.name for w in collector.writers} == set(names("test"))
    assert len(attached) == len(callbacks) - len(names("test"))
    trainer = SimpleNamespace(callbacks=attached)
    with pytest.raises(ConfigError, match="no_such_layer"):  # Grad-CAM's layer check, via setup
        collector.setup(trainer, SimpleNamespace(net=CNN(10, (1, 28, 28))), "fit")
    # without the collector nothing moves, so each writer refuses the run with its fix
    alone = [cb for cb in callbacks if not isinstance(cb, Evaluation)]
    assert attach_writers(alone) == alone


@requires_data
def test_fast_dev_run_writes_no_artifacts(tmp_path, data_root) -> None:
    from mnistlab.run import train

    cfg = compose_config(
        [
            f"data.root={data_root}",
            "model=softmax",
            "+trainer.fast_dev_run=true",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
    )
    train(cfg)
    assert not (tmp_path / "artifacts").exists()


# --- image files for predict -------------------------------------------------------------------
def _digit(width: int = 120, height: int = 90, ink: int = 0, paper: int = 255) -> np.ndarray:
    """A thick off-center bar ('1'-like) drawn in ``ink`` on ``paper``."""
    array = np.full((height, width), paper, dtype=np.uint8)
    array[20:70, 30:42] = ink
    return array


def test_a_28x28_dataset_image_is_taken_as_it_is() -> None:
    image = np.zeros((28, 28), dtype=np.uint8)
    image[5:20, 10:14] = 200
    assert torch.equal(to_dataset_image(image, "mnist")[0], torch.from_numpy(image))


def test_dark_ink_on_paper_becomes_a_centered_white_digit_in_a_20px_box() -> None:
    out = to_dataset_image(_digit(), "mnist")[0].float()
    assert out.shape == (28, 28) and out[0].max() == 0 and out[:, 0].max() == 0  # black border
    rows, cols = torch.nonzero(out > 25, as_tuple=True)
    assert rows.max() - rows.min() + 1 == 20  # longest side fitted to 20 px
    total = out.sum()
    cy = (out.sum(1) * torch.arange(28)).sum() / total
    cx = (out.sum(0) * torch.arange(28)).sum() / total
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1  # center of mass at the center


def test_fashion_images_fill_28px_and_transparent_png_counts_as_white(tmp_path) -> None:
    rgba = np.zeros((90, 120, 4), dtype=np.uint8)  # transparent, with an opaque black bar
    rgba[20:70, 30:42] = (0, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "shirt.png")
    out = load_image(tmp_path / "shirt.png", "fashion_mnist")[0]
    rows, cols = torch.nonzero(out > 25, as_tuple=True)
    assert rows.max() - rows.min() + 1 == 28 and out[:, 0].max() == 0


def test_blank_and_broken_files_raise_a_clear_error(tmp_path) -> None:
    with pytest.raises(ImageInputError, match="blank image"):
        to_dataset_image(np.full((50, 50), 255, dtype=np.uint8), "mnist")
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ImageInputError, match="not a readable PNG/JPEG image"):
        load_image(tmp_path / "x.png", "mnist")


def test_summary_json_is_valid_json_of_numbers(tmp_path) -> None:
    labels = torch.arange(30) % 3
    result = _predictions(F.one_hot(labels, 3).float(), labels)
    from mnistlab.artifacts.calibration import CalibrationArtifact
    from mnistlab.artifacts.roc import ROCArtifact

    trainer = SimpleNamespace(
        callbacks=[CalibrationArtifact(tmp_path), ROCArtifact(tmp_path)], loggers=[], global_step=0
    )
    Evaluation(tmp_path).run_writers(trainer, None, result)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["test_images"] == 30 and summary["test/auroc_macro"] == pytest.approx(1.0)
    assert set(summary["seconds"]) == {"calibration", "roc"}


def test_a_failing_artifact_is_reported_and_the_others_still_written(tmp_path) -> None:
    from mnistlab.artifacts.calibration import CalibrationArtifact
    from mnistlab.artifacts.evaluation import TestSetArtifact

    class Broken(TestSetArtifact):
        name = "broken"

        def write(self, result, pl_module):
            raise RuntimeError("no luck")

    labels = torch.arange(30) % 3
    trainer = SimpleNamespace(
        callbacks=[Broken(tmp_path), CalibrationArtifact(tmp_path)], loggers=[], global_step=0
    )
    Evaluation(tmp_path).run_writers(
        trainer, None, _predictions(F.one_hot(labels, 3).float(), labels)
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed"] == {"broken": "RuntimeError: no luck"}
    assert (tmp_path / "calibration.png").is_file() and "test/ece" in summary
