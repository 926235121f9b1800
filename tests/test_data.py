"""The data module on the real MNIST / Fashion-MNIST files, and batch augmentation."""

from __future__ import annotations

import pytest
import torch
from conftest import requires_data
from torchvision import datasets
from torchvision.transforms.v2 import functional as TF

from mnistlab.data import (
    InMemoryBatches,
    MNISTDataModule,
    RandomAffine,
    RandomErasing,
    RandomGaussianBlur,
    RandomHorizontalFlip,
)
from mnistlab.data.augment import BatchAugmentation, ElasticDistortion
from mnistlab.errors import ConfigError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist(data_root) -> MNISTDataModule:
    dm = MNISTDataModule("mnist", root=data_root, download=False)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def fashion(data_root) -> MNISTDataModule:
    dm = MNISTDataModule("fashion_mnist", root=data_root, download=False)
    dm.setup()
    return dm


@requires_data
@pytest.mark.parametrize("name", ["mnist", "fashion"])
def test_split_sizes_and_no_overlap(name: str, request) -> None:
    dm = request.getfixturevalue(name)
    assert [len(dm.split(s)[1]) for s in ("train", "val", "test")] == [55_000, 5_000, 10_000]
    train, val = set(dm.train_indices.tolist()), set(dm.val_indices.tolist())
    assert not train & val
    assert train | val == set(range(60_000))


@requires_data
def test_validation_split_is_stratified(mnist, fashion) -> None:
    assert fashion.class_counts("val").tolist() == [500] * 10
    full = torch.bincount(datasets.MNIST(str(mnist.root), train=True).targets, minlength=10)
    expected = full.double() * 5000 / 60000
    assert (mnist.class_counts("val").double() - expected).abs().max() <= 1.0


@requires_data
def test_test_split_is_the_official_test_set(mnist, fashion) -> None:
    official = datasets.MNIST(str(mnist.root), train=False)
    images, labels = mnist.split("test")
    assert torch.equal(images[:, 0], official.data) and torch.equal(labels, official.targets)
    assert mnist.class_counts("test").tolist() == MNIST_TEST_COUNTS
    assert fashion.class_counts("test").tolist() == [1000] * 10


@requires_data
def test_split_depends_on_split_seed_only(data_root) -> None:
    a = MNISTDataModule("mnist", root=data_root, download=False, seed=1)
    b = MNISTDataModule("mnist", root=data_root, download=False, seed=2)
    c = MNISTDataModule("mnist", root=data_root, download=False, split_seed=7)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.val_indices, b.val_indices)
    assert not torch.equal(a.val_indices, c.val_indices)


@requires_data
def test_val_size_as_fraction_and_train_subset(data_root) -> None:
    dm = MNISTDataModule(
        "fashion_mnist", root=data_root, download=False, val_size=0.1, train_size=1000
    )
    dm.setup()
    assert len(dm.split("val")[1]) == 6000
    assert dm.class_counts("train").tolist() == [100] * 10


@requires_data
def test_metadata_for_models_and_callbacks(mnist, fashion) -> None:
    assert mnist.num_classes == 10 and mnist.input_shape == (1, 28, 28)
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
    assert mnist.class_names == [str(d) for d in range(10)]
    x = mnist.normalize(mnist.split("train")[0][:20000])
    assert x.mean().item() == pytest.approx(0.0, abs=0.02)
    assert x.std().item() == pytest.approx(1.0, abs=0.02)


@requires_data
def test_batches_are_seeded(data_root) -> None:
    def first_batches(seed: int) -> list[torch.Tensor]:
        dm = MNISTDataModule(
            "mnist",
            root=data_root,
            download=False,
            seed=seed,
            batch_size=64,
            augmentation=[RandomAffine(degrees=15, translate=0.1)],
        )
        dm.setup()
        out = []
        for _ in range(2):  # two epochs: a new order each epoch
            images, labels = next(iter(dm.train_dataloader()))
            out.append(labels)
        return out

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])


def test_loader_covers_every_index_once_per_epoch() -> None:
    images = torch.arange(1000).view(-1, 1, 1, 1)
    labels = torch.arange(1000)
    loader = InMemoryBatches(images, labels, batch_size=128, shuffle=True, seed=3)
    assert len(loader) == 8
    for _ in range(2):
        seen = torch.cat([y for _, y in loader])
        assert sorted(seen.tolist()) == list(range(1000))


def _same_image_batch(n: int = 16) -> torch.Tensor:
    image = torch.zeros(1, 28, 28)
    image[:, 6:22, 12:16] = 1.0  # a vertical bar
    image[:, 6:9, 12:24] = 1.0  # and a top bar to the right: an asymmetric "7"
    return image.expand(n, 1, 28, 28).clone()


@pytest.mark.parametrize(
    "transform",
    [
        RandomAffine(degrees=15, translate=0.1, scale=(0.9, 1.1), shear=10),
        ElasticDistortion(alpha=34, sigma=4),
        RandomErasing(p=1.0, scale=(0.05, 0.2)),
        RandomHorizontalFlip(p=0.5),
        RandomGaussianBlur(sigma=(0.1, 2.0), p=1.0),
    ],
    ids=lambda t: type(t).__name__,
)
def test_augmentation_differs_per_sample_and_is_seeded(transform) -> None:
    batch = _same_image_batch()
    out1 = transform(batch, torch.Generator().manual_seed(0))
    out2 = transform(batch, torch.Generator().manual_seed(0))
    out3 = transform(batch, torch.Generator().manual_seed(1))
    assert out1.shape == batch.shape and torch.isfinite(out1).all()
    assert torch.equal(out1, out2), "same seed must give the same augmentation"
    assert not torch.equal(out1, out3)
    distinct = {tuple(x.flatten().round(decimals=4).tolist()) for x in out1}
    assert (
        len(distinct) >= 2 if isinstance(transform, RandomHorizontalFlip) else len(distinct) >= 12
    )


def test_affine_identity_and_known_translation() -> None:
    batch = _same_image_batch(2)
    identity = RandomAffine()(batch, torch.Generator().manual_seed(0))
    assert torch.allclose(identity, batch, atol=1e-5)
    shift = RandomAffine()
    params = shift.sample(2, 28, 28, torch.Generator().manual_seed(0))
    params["tx"] = torch.tensor([3.0, 0.0])
    moved = shift.apply(batch, params)
    assert torch.allclose(moved[0, :, :, 3:], batch[0, :, :, :-3], atol=1e-5)  # 3 px to the right
    assert torch.allclose(moved[1], batch[1], atol=1e-5)


def test_blur_matches_torchvision_per_sample_and_keeps_unchosen_images() -> None:
    image = torch.zeros(1, 28, 28)
    image[:, 8:20, 12:15] = 1.0  # a stroke well inside the frame: no padding effects
    image[:, 8:11, 12:18] = 0.5
    batch = image.expand(8, 1, 28, 28) * torch.linspace(0.2, 1.0, 8)[:, None, None, None]
    blur = RandomGaussianBlur(sigma=(0.3, 1.5), p=0.5)
    params = blur.sample(8, 28, 28, torch.Generator().manual_seed(3))
    assert params["apply"].any() and not params["apply"].all()
    out = blur.apply(batch, params)
    assert blur.kernel_size == 11  # +-3 sigma of the largest sigma, 1.5 px
    for i in range(8):
        if params["apply"][i]:  # torchvision's blur at this sample's own sigma
            sigma, size = float(params["sigma"][i]), blur.kernel_size
            expected = TF.gaussian_blur(batch[i], kernel_size=[size, size], sigma=[sigma, sigma])
            torch.testing.assert_close(out[i], expected, atol=1e-6, rtol=0)
        else:
            assert torch.equal(out[i], batch[i])
    assert torch.allclose(out.sum(dim=(1, 2, 3)), batch.sum(dim=(1, 2, 3)), rtol=1e-5)  # ink kept


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sigma": (1.0, 0.5)}, r"blur sigma=\[1.0, 0.5\] must be \[low, high\] with low <= high"),
        ({"sigma": (0.0, 1.0)}, r"blur sigma\[0\]=0.0"),
        ({"kernel_size": 4}, r"blur kernel_size=4 must be odd"),
        ({"p": 1.5}, r"blur p=1.5"),
    ],
)
def test_blur_refuses_bad_settings(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        RandomGaussianBlur(**kwargs)


def test_flip_is_refused_for_digits() -> None:
    with pytest.raises(
        ConfigError, match="RandomHorizontalFlip does not fit data=mnist.*fashion_mnist"
    ):
        MNISTDataModule("mnist", augmentation=[RandomHorizontalFlip()])
    MNISTDataModule("fashion_mnist", augmentation=[RandomHorizontalFlip()])  # fine for clothes


@requires_data
def test_augmentation_applies_to_training_batches_only(data_root) -> None:
    dm = MNISTDataModule(
        "mnist",
        root=data_root,
        download=False,
        batch_size=8,
        augmentation=BatchAugmentation([RandomErasing(p=1.0, scale=(0.3, 0.3))]),
    )
    dm.setup()
    batch = dm.split("val")[0][:8], dm.split("val")[1][:8]

    class _Stage:
        training = False

    dm.trainer = _Stage()
    plain, _ = dm.on_after_batch_transfer(batch, 0)
    _Stage.training = True
    augmented, _ = dm.on_after_batch_transfer(batch, 0)
    assert torch.allclose(plain, dm.normalize(batch[0]))
    assert not torch.allclose(augmented, plain)
