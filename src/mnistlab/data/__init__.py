"""Data sets, in-memory batching and batched per-sample augmentation."""

from mnistlab.data.augment import (
    BatchAugmentation,
    RandomAffine,
    RandomErasing,
    RandomGaussianBlur,
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
    "RandomGaussianBlur",
    "RandomHorizontalFlip",
]
