"""Deterministic, resumable sharding of a dataset across processes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class SeededShardSampler(Sampler):
    """Shuffled (or ordered) indices, sharded across processes, yielded as ``(epoch, index)``.

    The order depends only on ``seed`` and the epoch Lightning sets, so a resumed run sees the
    same batches as an uninterrupted one. Each global batch of ``world_size x batch_size`` indices
    is cut into one contiguous block per rank, so a DDP step sees exactly the samples that one
    process would see as ``world_size`` accumulated micro-batches. The tail is dealt round-robin
    and padded by repetition so that every rank gets the same number of samples.
    """

    def __init__(
        self, size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1, batch_size: int = 1
    ) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            order = np.arange(self.size)
        step = self.world_size * self.batch_size
        full = self.size // step * step
        blocks = order[:full].reshape(-1, self.world_size, self.batch_size)[:, self.rank].ravel()
        tail = order[full:]
        tail = np.resize(tail, -(-len(tail) // self.world_size) * self.world_size)[
            self.rank :: self.world_size
        ]
        return iter([(self.epoch, int(i)) for i in np.concatenate([blocks, tail])])
