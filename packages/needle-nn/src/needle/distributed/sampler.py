"""``DistributedSampler``: each rank's disjoint, equal share of a data set, epoch by epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .world import current


class DistributedSampler:
    """Sample indices for ``DataLoader(dataset, batch_size, sampler=...)`` on one rank.

    Every epoch all ranks draw the same permutation (from ``seed`` and the epoch, not
    from NumPy's global generator) and rank ``r`` of ``N`` takes positions
    ``r, r + N, r + 2N, ...``. The shards are disjoint and equally long
    (``len(dataset) // N``): the last ``len(dataset) % N`` positions of each epoch's
    permutation are left out, a different few every epoch. Equal shards give every
    rank the same number of batches, so no rank waits forever in a collective.

    Call ``set_epoch(epoch)`` before each epoch for a new order; ``set_epoch(epoch,
    start=k)`` continues an epoch after its first ``k`` samples (what a resumed run
    needs). ``state_dict()`` / ``load_state_dict()`` save and restore that.

    Args:
        dataset: anything with ``len()``.
        shuffle: a new permutation each epoch (default); else ``0, 1, 2, ...``.
        seed: the same on every rank.
        num_replicas, rank: default to the world that ``needle.distributed.init()`` joined.
    """

    def __init__(self, dataset: Any, shuffle: bool = True, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        world = current() if num_replicas is None or rank is None else None
        self.num_replicas = int(num_replicas if num_replicas is not None else world.size)
        self.rank = int(rank if rank is not None else world.rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: rank {self.rank} is not in "
                             f"[0, num_replicas={self.num_replicas})")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DistributedSampler: seed must be an integer >= 0, got {seed!r}")
        self.size = len(dataset)
        self.num_samples = self.size // self.num_replicas
        if self.num_samples == 0:
            raise ValueError(f"DistributedSampler: {self.size} samples cannot give each of "
                             f"{self.num_replicas} ranks at least one")
        self.shuffle, self.seed = bool(shuffle), int(seed)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use epoch ``epoch``'s order from now on, skipping its first ``start`` samples."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"DistributedSampler.set_epoch: start {start} is outside this "
                             f"rank's {self.num_samples} samples")
        self.epoch, self.start = int(epoch), int(start)

    def indices(self) -> np.ndarray:
        """This rank's sample indices for the current epoch, after ``start``."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            order = np.arange(self.size)
        used = order[:self.num_samples * self.num_replicas]
        return used[self.rank::self.num_replicas][self.start:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples - self.start

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed,
                "num_replicas": self.num_replicas, "size": self.size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from ``state``; it must come from a sampler over the same data and ranks."""
        for key in ("seed", "num_replicas", "size"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"DistributedSampler.load_state_dict: saved {key} "
                                 f"{state.get(key)!r} != this sampler's {getattr(self, key)}")
        self.set_epoch(int(state["epoch"]), int(state["start"]))
