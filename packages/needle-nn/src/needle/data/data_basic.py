"""``Dataset`` and ``DataLoader``: the course's API, with one gather per batch.

The loader's order is the course's: ``np.random.permutation`` from NumPy's global
generator, drawn when iteration starts (every epoch), split with
``np.array_split(perm, range(batch_size, n, batch_size))``. Seeding NumPy therefore
reproduces the course's batches exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from needle import Device, Tensor, default_device, ops
from needle import device as as_device

from .errors import DataError


class Dataset:
    """A sized, indexable collection of samples; each sample is a tuple of arrays.

    Subclasses implement ``__getitem__`` and ``__len__``. A subclass whose
    ``__getitem__`` also takes an integer array and returns the whole batch as new
    arrays (one stacked array per field, as NumPy's integer-array indexing gives)
    sets ``supports_batch_index = True``; the ``DataLoader`` then gathers a batch
    with one call instead of one per sample, and hands those arrays to the Tensors
    without copying them again.
    """

    supports_batch_index: bool = False

    def __init__(self, transforms: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None) -> None:
        self.transforms = transforms

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def apply_transforms(self, x: np.ndarray) -> np.ndarray:
        """``x`` passed through every transform, in order."""
        for transform in self.transforms or ():
            x = transform(x)
        return x


class DataLoader:
    """Iterate over a dataset in (optionally shuffled) batches of Tensors.

    Each batch is a tuple with one Tensor per array the dataset returns, on
    ``device`` (default: ``ndl.default_device()``). Floating-point arrays become
    ``dtype`` (float32, as in the course) and integer arrays (labels, token ids)
    int64 Tensors, which keep their exact values and are what ``init.one_hot`` and
    indexing expect; ``dtype=None`` keeps every array's own dtype. The Tensors are
    constants (``requires_grad=False``).

    ``sampler`` (an iterable of sample indices with a ``len``, such as
    ``needle.distributed.DistributedSampler``) sets the order instead of
    ``shuffle``; it is iterated afresh every epoch.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, device: Device | str | None = None,
                 dtype: Any = "float32", sampler: Any = None) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise DataError(f"DataLoader needs a dataset with __getitem__ and __len__, "
                            f"got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise DataError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if sampler is not None and (shuffle or not hasattr(sampler, "__iter__")
                                    or not hasattr(sampler, "__len__")):
            raise DataError("DataLoader: sampler must be an iterable of indices with a len(), "
                            "and sets the order itself (shuffle must be False)")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = as_device(device) if device is not None else default_device()
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.ordering = self._split(self._sampled() if sampler is not None
                                    else np.arange(len(dataset)))

    def _sampled(self) -> np.ndarray:
        order = np.fromiter(iter(self.sampler), np.int64)
        n = len(self.dataset)
        bad = order[(order < 0) | (order >= n)]
        if bad.size:
            raise DataError(f"DataLoader: the sampler gave index {int(bad[0])}, outside the "
                            f"dataset's {n} samples")
        return order

    def _split(self, order: np.ndarray) -> list[np.ndarray]:
        n = len(order)
        if n == 0:
            return []
        batches = np.array_split(order, range(self.batch_size, n, self.batch_size))
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        # The permutation is drawn here, not at the first next(), as in the course.
        if self.sampler is not None:
            self.ordering = self._split(self._sampled())
        elif self.shuffle:
            self.ordering = self._split(np.random.permutation(len(self.dataset)))
        return self._batches(self.ordering)

    def _batches(self, ordering: list[np.ndarray]) -> Iterator[tuple[Tensor, ...]]:
        for indices in ordering:
            yield tuple(self._tensor(field, k) for k, field in enumerate(self._gather(indices)))

    def _gather(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """One stacked array per field for the samples at ``indices``."""
        if getattr(self.dataset, "supports_batch_index", False):
            sample = self.dataset[indices]
            return tuple(sample) if isinstance(sample, (tuple, list)) else (sample,)
        samples = [self.dataset[int(i)] for i in indices]
        samples = [tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in samples]
        n_fields = len(samples[0])
        if any(len(s) != n_fields for s in samples):
            raise DataError(f"{type(self.dataset).__name__}: samples have different numbers of "
                            f"fields ({sorted({len(s) for s in samples})}) within one batch")
        return tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(n_fields))

    def _tensor(self, field: Any, k: int) -> Tensor:
        arr = np.asarray(field)
        kind = arr.dtype.kind
        if kind == "f" and self.dtype is not None:
            dtype = self.dtype
        elif kind in "iu" and self.dtype is not None:
            dtype = np.dtype(np.int64)
        elif kind in "fiub":
            dtype = arr.dtype
        else:
            raise DataError(f"{type(self.dataset).__name__}: field {k} of a sample has dtype "
                            f"{arr.dtype}, which a Tensor cannot hold")
        if arr.flags.owndata and arr.flags.writeable:
            # A batch is a new array (np.stack, or a batch index: see Dataset): where the
            # device can hold it as it is, it becomes the tensor's without a second copy
            return ops.as_tensor(arr, dtype=dtype, device=self.device)
        return Tensor(arr, device=self.device, dtype=dtype, requires_grad=False)  # a view: copied
