"""Batches sliced from tensors that already sit in memory (or on the GPU).

For 28x28 data sets a per-sample ``DataLoader`` spends most of its time in
Python; slicing whole batches out of one uint8 tensor is several times faster
(see ../shared/STACK.md and ``python -m benchmarks.bench``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class InMemoryBatches:
    """Iterable of ``(images, labels)`` batches over in-memory tensors.

    Shuffling is seeded by ``(seed, epoch)``: the same seed gives the same
    batches, and each pass over the data (an epoch) gets a new permutation;
    ``epoch`` is the pass the next iteration makes (a resumed run sets it).
    Under data parallelism each rank takes a disjoint strided shard of the
    permutation (``rank``/``world_size``). With ``pad`` (training), the shards are
    padded by wrapping around, as ``DistributedSampler`` does, so every rank runs
    the same number of steps; without it (validation, test) each sample is on
    exactly one rank, so metrics count every image once.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        epoch: int = 0,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = int(epoch)

    def _num_samples(self) -> int:
        n = len(self.labels)
        if self.pad:  # pad up (like DistributedSampler): every rank sees the same number of batches
            return math.ceil(n / self.world_size)
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def indices(self, epoch: int) -> torch.Tensor:
        """The sample order of one epoch on this rank (CPU tensor)."""
        n = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if self.world_size > 1 and self.pad:
            total = self._num_samples() * self.world_size
            order = torch.cat([order, order[: total - n]])[self.rank :: self.world_size]
        elif self.world_size > 1:
            order = order[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices(self.epoch).to(self.images.device)
        self.epoch += 1
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        if not self.shuffle and self.world_size == 1:
            for start in range(0, stop, self.batch_size):  # contiguous views, no copy
                end = min(start + self.batch_size, stop)
                yield self.images[start:end], self.labels[start:end]
            return
        for start in range(0, stop, self.batch_size):
            idx = order[start : start + self.batch_size]
            # index_select, not images[idx]: ~10x faster for uint8 batches on the CPU
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)
