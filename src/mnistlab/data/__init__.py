"""Data sets, in-memory batching and batched per-sample augmentation."""

from mnistlab.data.augment import (
    BatchAugmentation,
    RandomAffine,
    RandomErasing,
    RandomHorizontalFlip,
)
from mnistlab.data.datamodule import DATASETS, DatasetSpec, MNISTDataModule
from mnistlab.data.loader import InMemoryBatches

__all__ = [
    "DATASETS",
    "BatchAugmentation",
    "DatasetSpec",
    "InMemoryBatches",
    "MNISTDataModule",
    "RandomAffine",
    "RandomErasing",
    "RandomHorizontalFlip",
]
