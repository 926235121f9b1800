"""One LightningDataModule for MNIST and Fashion-MNIST.

Images are decoded once into a uint8 tensor (N, 1, 28, 28); batches are sliced
from memory (from GPU memory when training on a GPU); conversion to float,
augmentation (train only, per sample) and normalization run on whole batches
after the transfer to the device.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torchvision import datasets

from mnistlab.data.augment import BatchAugmentation, BatchTransform
from mnistlab.data.loader import InMemoryBatches
from mnistlab.errors import ConfigError, DataError, positive_int

DATA_ROOT_ENV = "MNISTLAB_DATA_ROOT"

log = logging.getLogger("mnistlab")

#: md5 of the official uncompressed IDX files (torchvision's resources list the md5 of the .gz
#: downloads; these are the files those decompress to), by data set folder and file name
OFFICIAL_MD5: dict[str, dict[str, str]] = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}


@dataclass(frozen=True)
class DatasetSpec:
    """What the rest of the lab needs to know about a data set, before loading it."""

    name: str
    torchvision_class: type
    class_names: tuple[str, ...]
    mean: float
    std: float
    train_size: int
    test_size: int
    input_shape: tuple[int, int, int] = (1, 28, 28)
    #: a horizontally flipped image keeps its label (true for clothes, false for digits)
    mirror_invariant: bool = False
    raw_files: tuple[str, ...] = field(
        default=(
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def folder(self) -> str:
        return self.torchvision_class.__name__


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        torchvision_class=datasets.MNIST,
        class_names=tuple(str(d) for d in range(10)),
        mean=0.1307,
        std=0.3081,
        train_size=60_000,
        test_size=10_000,
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        torchvision_class=datasets.FashionMNIST,
        class_names=tuple(datasets.FashionMNIST.classes),
        mean=0.2860,
        std=0.3530,
        train_size=60_000,
        test_size=10_000,
        mirror_invariant=True,
    ),
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve_val_count(val_size: int | float, train_size: int) -> int:
    """Validation count from a count (int >= 1) or a fraction (0 < float < 1) of the train set."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        raise ConfigError(
            f"data.val_size={val_size!r} must be a count (e.g. 5000) or a fraction (e.g. 0.1)"
        )
    count = (
        int(round(val_size * train_size))
        if isinstance(val_size, float) and val_size < 1
        else val_size
    )
    if isinstance(count, float):
        if not count.is_integer():
            raise ConfigError(
                f"data.val_size={val_size} must be a fraction below 1 or a whole count"
            )
        count = int(count)
    if count < 1 or count >= train_size - count:
        raise ConfigError(
            f"data.val_size={val_size} gives {count} validation images out of {train_size}; "
            f"it must be at least 1 and smaller than the remaining train set (< {train_size // 2})"
        )
    return count


def checksum_cache_path() -> Path:
    """Where verified checksums are remembered: ``$XDG_CACHE_HOME/mnistlab/checksums.json``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnistlab" / "checksums.json"


def file_md5(path: Path) -> str:
    """md5 of ``path``, remembered by (path, size, mtime) so each file is hashed once."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = checksum_cache_path()
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    if isinstance(cache.get(key), str):
        return cache[key]
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    cache[key] = digest.hexdigest()
    try:  # a cache that cannot be written only costs a re-hash next time
        from mnistlab.files import write_json

        write_json(cache_file, cache)
    except OSError:
        pass
    return cache[key]


def verify_files(spec: DatasetSpec, raw: Path, train: bool) -> None:
    """Check ``raw``'s files of one split against the official checksums.

    A file that is the official file of another data set or split (e.g. Fashion-MNIST's
    labels under MNIST/) is refused with one line; an unknown file (a user's own IDX
    data) is loaded with a warning.
    """
    prefix = "train-" if train else "t10k-"
    known = {
        md5: f"{folder}/raw/{name}"
        for folder, files in OFFICIAL_MD5.items()
        for name, md5 in files.items()
    }
    for name in spec.raw_files:
        if not name.startswith(prefix):
            continue
        expected = OFFICIAL_MD5.get(spec.folder, {}).get(name)
        if expected is None:
            continue
        path = raw / name
        actual = file_md5(path)
        if actual == expected:
            continue
        if actual in known:
            raise DataError(
                f"{path} is the official {known[actual]}, not {spec.folder}/raw/{name} "
                f"(md5 {actual}, expected {expected}); put the official file there "
                f"(delete it to download again)"
            )
        log.warning(
            "%s is not the official %s file (md5 %s, expected %s); loading it as your own IDX data",
            path,
            spec.folder,
            actual,
            expected,
        )


def _download(spec: DatasetSpec, root: Path, train: bool) -> None:
    """torchvision's download; the folders it made are removed again when it fails."""
    created = [p for p in (root, root / spec.folder, root / spec.folder / "raw") if not p.exists()]
    try:
        spec.torchvision_class(str(root), train=train, download=True)
    except BaseException:
        for folder in reversed(created):
            try:
                folder.rmdir()  # only when empty: never removes files
            except OSError:
                break
        raise


def load_split(
    spec: DatasetSpec, root: Path, train: bool, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one official split into ``(uint8 images (N, 1, H, W), int64 labels)``.

    Missing files with ``download`` on use torchvision's download; every failure
    becomes one :class:`DataError` line that says where we looked and what to do.
    """
    raw = root / spec.folder / "raw"
    fix = (
        f"point data.root at a folder holding {spec.folder}/raw/ "
        f"(e.g. `python train.py data.root=../shared/data`) or set {DATA_ROOT_ENV}"
    )
    present = all((raw / f).is_file() for f in spec.raw_files)
    if not present and not download:
        raise DataError(f"{spec.name} files not found in {raw} and data.download=false; {fix}")
    if not present:
        try:
            _download(spec, root, train)
        except Exception as err:  # URLError, HTTP errors, checksum mismatch, ...
            lines = str(err).strip().splitlines()
            reason = lines[-1][:160] if lines else type(err).__name__
            raise DataError(
                f"{spec.name} not found in {raw} and the download failed ({reason}); {fix}"
            ) from None
    verify_files(spec, raw, train)
    try:
        dataset = spec.torchvision_class(str(root), train=train, download=False)
    except Exception as err:  # torchvision asserts / fails to reshape on damaged files
        raise DataError(
            f"{spec.name} files in {raw} are corrupt or truncated ({type(err).__name__}: {str(err)[:120]}); "
            f"delete them to download again, or {fix}"
        ) from None
    images, labels = dataset.data, dataset.targets
    expected = spec.train_size if train else spec.test_size
    c, h, w = spec.input_shape
    if (
        images.shape != (expected, h, w)
        or labels.shape != (expected,)
        or images.dtype != torch.uint8
    ):
        raise DataError(
            f"{spec.name} {'train' if train else 'test'} split in {raw} has images {tuple(images.shape)} "
            f"and labels {tuple(labels.shape)}, expected ({expected}, {h}, {w}) and ({expected},); "
            f"the files are not the official ones or are damaged"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= spec.num_classes:
        raise DataError(
            f"{spec.name} labels in {raw} fall outside 0..{spec.num_classes - 1}; the files are damaged"
        )
    return images.view(-1, c, h, w).contiguous(), labels.long()


class MNISTDataModule(L.LightningDataModule):
    """MNIST or Fashion-MNIST: official test set, seeded stratified validation split, in-memory batches.

    Args:
        dataset: ``mnist`` or ``fashion_mnist``.
        root: torchvision-style folder (``MNIST/raw``, ``FashionMNIST/raw``).
        download: fetch missing files with torchvision (needs internet).
        val_size: validation images carved from the official train set: a count or a fraction.
        split_seed: seed of the stratified train/validation split (fixed across runs by default,
            so every run of a study is validated on the same images).
        train_size: optional stratified subset of the remaining train images (learning curves).
        batch_size: training batch size; ``eval_batch_size`` is used for validation and test.
        augmentation: batch transforms applied to training batches only.
        seed: shuffling and augmentation seed (the run's seed).
        data_on_device: keep the tensors on the training device when it is a GPU.
    """

    def __init__(
        self,
        dataset: str = "mnist",
        root: str | os.PathLike = "data",
        download: bool = True,
        val_size: int | float = 5000,
        split_seed: int = 42,
        train_size: int | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        augmentation: Sequence[BatchTransform] | BatchAugmentation = (),
        seed: int = 0,
        data_on_device: bool = True,
    ) -> None:
        super().__init__()
        self.spec = get_spec(dataset)
        self.root = Path(root).expanduser().resolve()
        self.download = download
        positive_int(batch_size, "data.batch_size")
        positive_int(eval_batch_size, "data.eval_batch_size")
        self.val_count = resolve_val_count(val_size, self.spec.train_size)
        if train_size is not None and not 1 <= train_size <= self.spec.train_size - self.val_count:
            raise ConfigError(
                f"data.train_size={train_size} must be between 1 and "
                f"{self.spec.train_size - self.val_count} (the train images left after validation), or null"
            )
        self.split_seed = split_seed
        self.train_size = train_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.augmentation = (
            augmentation
            if isinstance(augmentation, BatchAugmentation)
            else BatchAugmentation(augmentation)
        )
        for transform in self.augmentation.transforms:
            if transform.needs_mirror_invariant_labels and not self.spec.mirror_invariant:
                raise ConfigError(
                    f"augmentation {type(transform).__name__} does not fit data={self.spec.name}: "
                    f"a mirrored image changes its class; use it with a mirror-invariant data set "
                    f"({', '.join(n for n, s in DATASETS.items() if s.mirror_invariant)}) or pick another augmentation"
                )
        self.seed = seed
        self.data_on_device = data_on_device
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.train_indices: torch.Tensor | None = None
        self.val_indices: torch.Tensor | None = None
        self._aug_generator = torch.Generator().manual_seed(seed)
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._train_batches: InMemoryBatches | None = None
        self._train_epoch = 0  # the shuffling pass the train loader makes next (restored on resume)

    # --- what models and callbacks read -------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.spec.input_shape

    @property
    def mean(self) -> float:
        return self.spec.mean

    @property
    def std(self) -> float:
        return self.spec.std

    # --- loading ------------------------------------------------------------------------
    def prepare_data(self) -> None:
        # Download only; decoding happens once, in setup().
        raw = self.root / self.spec.folder / "raw"
        if not self._splits and not all((raw / f).is_file() for f in self.spec.raw_files):
            load_split(self.spec, self.root, train=True, download=self.download)

    def setup(self, stage: str | None = None) -> None:
        if not self._splits:
            train_x, train_y = load_split(self.spec, self.root, train=True, download=self.download)
            test_x, test_y = load_split(self.spec, self.root, train=False, download=False)
            train_idx, val_idx = self._split_indices(train_y)
            self.train_indices, self.val_indices = train_idx, val_idx
            self._splits = {
                "train": (train_x[train_idx], train_y[train_idx]),
                "val": (train_x[val_idx], train_y[val_idx]),
                "test": (test_x, test_y),
            }
        device = self._target_device()
        if device is not None and self._splits["train"][0].device != device:
            self._splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self._splits.items()}

    def _split_indices(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.model_selection import train_test_split

        all_idx = np.arange(len(labels))
        y = labels.numpy()
        train_idx, val_idx = train_test_split(
            all_idx, test_size=self.val_count, stratify=y, random_state=self.split_seed
        )
        if self.train_size is not None and self.train_size < len(train_idx):
            train_idx, _ = train_test_split(
                train_idx,
                train_size=self.train_size,
                stratify=y[train_idx],
                random_state=self.split_seed,
            )
        return torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(val_idx))

    def _target_device(self) -> torch.device | None:
        trainer = getattr(self, "trainer", None)
        if not self.data_on_device or trainer is None:
            return None
        device = trainer.strategy.root_device
        return device if device.type == "cuda" else None

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(uint8 images, labels)`` of ``train``, ``val`` or ``test`` (after :meth:`setup`)."""
        if not self._splits:
            self.setup()
        return self._splits[name]

    def class_counts(self, name: str) -> torch.Tensor:
        return torch.bincount(self.split(name)[1].cpu(), minlength=self.num_classes)

    # --- batches ------------------------------------------------------------------------
    def _batches(self, name: str, batch_size: int, shuffle: bool) -> InMemoryBatches:
        images, labels = self.split(name)
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return InMemoryBatches(
            images,
            labels,
            batch_size,
            shuffle=shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            pad=name == "train",  # validation and test: every image on exactly one rank
            epoch=self._train_epoch if name == "train" else 0,
        )

    def train_dataloader(self) -> InMemoryBatches:
        # Keep one iterator object so its epoch counter (the shuffling seed) advances.
        if self._train_batches is None or self._train_batches.images is not self.split("train")[0]:
            if self._train_batches is not None:
                self._train_epoch = self._train_batches.epoch
            self._train_batches = self._batches("train", self.batch_size, shuffle=True)
        return self._train_batches

    def val_dataloader(self) -> InMemoryBatches:
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> InMemoryBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> InMemoryBatches:
        return self.test_dataloader()

    # --- on-device preprocessing ----------------------------------------------------------
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images -> normalized float images, on their device."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        mean, inv_std = self._device_stats(images.device)
        return (images - mean) * inv_std

    def _device_stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._stats:
            self._stats[device] = (
                torch.tensor(self.mean, device=device),
                torch.tensor(1.0 / self.std, device=device),
            )
        return self._stats[device]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, labels = batch
        images = images.float().div_(255)
        trainer = getattr(self, "trainer", None)
        if self.augmentation and trainer is not None and trainer.training:
            images = self.augmentation(images, self._aug_generator)
        # in place (same arithmetic as normalize()): this float batch is ours, not the caller's
        mean, inv_std = self._device_stats(images.device)
        return images.sub_(mean).mul_(inv_std), labels

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: a resumed run augments and shuffles as the uninterrupted one."""
        epoch = self._train_batches.epoch if self._train_batches is not None else self._train_epoch
        return {
            "aug_generator": self._aug_generator.get_state(),
            "seed": self.seed,
            "train_epoch": epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._aug_generator.set_state(state_dict["aug_generator"])
        self._train_epoch = int(state_dict.get("train_epoch", 0))
        if self._train_batches is not None:
            self._train_batches.epoch = self._train_epoch
